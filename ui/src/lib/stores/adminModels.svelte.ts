// Admin → Models: the catalog (enable/disable, display name), Ollama pulls with live progress,
// deletes, and provider health with the models Ollama has loaded.
import { ApiError } from '../api';
import { adminModelsApi } from '../endpoints';
import { describeError } from '../errors';
import { readSse } from '../sse';
import type { AdminModel, AdminProviderHealth, PullProgress } from '../chat/contract';

export type AdminModelsClient = Pick<
  typeof adminModelsApi,
  'list' | 'update' | 'remove' | 'pull' | 'providers'
>;

export interface PullState {
  name: string;
  status: string;
  /** 0–100 for the layer being downloaded (100 once done); null before sizes are known. */
  percent: number | null;
  phase: 'running' | 'done' | 'error';
  error: string | null;
}

export class AdminModelsStore {
  models = $state<AdminModel[]>([]);
  providers = $state<Record<string, AdminProviderHealth>>({});
  loading = $state(false);
  loadError = $state<ApiError | null>(null);
  pull = $state<PullState | null>(null);

  readonly #client: AdminModelsClient;
  #pullController: AbortController | null = null;

  constructor(client: AdminModelsClient = adminModelsApi) {
    this.#client = client;
  }

  async load(): Promise<void> {
    this.loading = true;
    try {
      const [list, providers] = await Promise.all([this.#client.list(), this.#client.providers()]);
      this.models = list.data;
      this.providers = providers;
      this.loadError = null;
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      this.loadError = err;
    } finally {
      this.loading = false;
    }
  }

  /** Models grouped by provider, in name order. */
  get byProvider(): [string, AdminModel[]][] {
    const groups = new Map<string, AdminModel[]>();
    for (const name of Object.keys(this.providers)) groups.set(name, []);
    for (const m of this.models) {
      const list = groups.get(m.provider) ?? [];
      list.push(m);
      groups.set(m.provider, list);
    }
    return [...groups.entries()].sort(([a], [b]) => a.localeCompare(b));
  }

  async setEnabled(modelId: string, enabled: boolean): Promise<void> {
    const changed = await this.#client.update(modelId, { enabled });
    this.models = this.models.map((m) => (m.id === changed.id ? { ...m, enabled: changed.enabled } : m));
  }

  async rename(modelId: string, displayName: string): Promise<void> {
    await this.#client.update(modelId, { display_name: displayName.trim() || null });
    await this.load();
  }

  async remove(modelId: string): Promise<void> {
    await this.#client.remove(modelId);
    await this.load();
  }

  /** Pull `name` from the Ollama library, following its progress; resolves when it ends. */
  async startPull(name: string): Promise<boolean> {
    this.#pullController?.abort();
    const controller = new AbortController();
    this.#pullController = controller;
    const state: PullState = { name, status: 'starting', percent: null, phase: 'running', error: null };
    this.pull = state;
    const set = (changes: Partial<PullState>) => {
      if (this.#pullController === controller) this.pull = { ...this.pull!, ...changes };
    };
    try {
      const response = await this.#client.pull(name, 'ollama', { signal: controller.signal });
      for await (const ev of readSse(response.body!, controller.signal)) {
        const data = JSON.parse(ev.data) as Record<string, unknown>;
        if (ev.event === 'progress') {
          const p = data as unknown as PullProgress;
          set({ status: p.status, ...(p.percent !== null ? { percent: p.percent } : {}) });
        } else if (ev.event === 'done') {
          set({ status: 'success', percent: 100, phase: 'done' });
        } else if (ev.event === 'error') {
          set({ phase: 'error', error: String(data.message ?? 'the pull failed') });
        }
      }
      if (this.pull?.phase === 'running') set({ phase: 'error', error: 'The pull ended early.' });
    } catch (err) {
      if (controller.signal.aborted) return false;
      set({ phase: 'error', error: describeError(err) });
    } finally {
      if (this.#pullController === controller) this.#pullController = null;
    }
    const ok = this.pull?.phase === 'done';
    if (ok) await this.load();
    return ok;
  }

  cancelPull(): void {
    this.#pullController?.abort();
    this.#pullController = null;
    this.pull = null;
  }
}
