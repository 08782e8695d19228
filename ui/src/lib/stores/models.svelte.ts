// The models a user may chat with (GET /api/models), grouped by provider for the picker.
// Models of a provider that is down are listed but can't be chosen.
import { ApiError } from '../api';
import { modelsApi } from '../endpoints';
import type { ModelList, ModelOption, ProviderHealth } from '../chat/contract';

export interface ModelGroup {
  provider: string;
  ok: boolean;
  models: ModelOption[];
}

/** Chat models by provider (providers and models in name order); a provider's `ok` is its
 *  health, or its models' `provider_ok` when the health report doesn't name it. */
export function groupModels(list: ModelList): ModelGroup[] {
  const groups = new Map<string, ModelGroup>();
  for (const model of list.data) {
    if (!model.enabled || model.capabilities?.chat === false) continue;
    let group = groups.get(model.provider);
    if (!group) {
      const ok = list.providers[model.provider]?.ok ?? model.provider_ok;
      group = { provider: model.provider, ok, models: [] };
      groups.set(model.provider, group);
    }
    group.models.push(model);
  }
  const sorted = [...groups.values()].sort((a, b) => a.provider.localeCompare(b.provider));
  for (const g of sorted) g.models.sort((a, b) => a.name.localeCompare(b.name));
  return sorted;
}

export function isSelectable(model: ModelOption, groups: readonly ModelGroup[]): boolean {
  const group = groups.find((g) => g.provider === model.provider);
  return Boolean(group?.ok && model.provider_ok);
}

export class ModelsStore {
  list = $state<ModelList>({ data: [], providers: {} });
  loaded = $state(false);
  loadError = $state<ApiError | null>(null);

  readonly groups = $derived(groupModels(this.list));
  /** The first model that can be chosen: the default for a new chat. */
  readonly fallback: string | null = $derived(
    this.groups.find((g) => g.ok)?.models.find((m) => m.provider_ok)?.id ?? null,
  );

  readonly #client: Pick<typeof modelsApi, 'list'>;

  constructor(client: Pick<typeof modelsApi, 'list'> = modelsApi) {
    this.#client = client;
  }

  async load(): Promise<void> {
    try {
      this.list = await this.#client.list();
      this.loadError = null;
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      this.loadError = err;
    } finally {
      this.loaded = true;
    }
  }

  /** Load, and while no model is listed yet (a server that just started may not have asked
   *  its providers) ask again a few times. The returned function stops it for good: a load
   *  still in flight when it is called schedules nothing after it, and a 401/403 (the
   *  session ended) stops the retries at once. */
  watch(options: { retries?: number; interval?: number } = {}): () => void {
    const { retries = 4, interval = 3000 } = options;
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let left = retries;
    const run = async () => {
      await this.load();
      if (stopped) return;
      const signedOut = this.loadError !== null && [401, 403].includes(this.loadError.status);
      if (this.groups.length === 0 && !signedOut && left-- > 0) timer = setTimeout(run, interval);
    };
    void run();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }

  find(id: string | null): ModelOption | undefined {
    return id === null ? undefined : this.list.data.find((m) => m.id === id);
  }

  /** How to show a model id in a message header: its display name and provider, else the id
   *  itself (a model no longer offered), with the provider its prefix names, if any. */
  describe(id: string | null): { name: string; provider: string | null } {
    if (id === null) return { name: 'Assistant', provider: null };
    const known = this.find(id) ?? this.find(id.slice(id.indexOf('/') + 1));
    if (known) return { name: known.name, provider: known.provider };
    const prefix = id.includes('/') ? id.slice(0, id.indexOf('/')) : null;
    return { name: id, provider: prefix === 'ollama' || prefix === 'bedrock' ? prefix : null };
  }

  providerHealth(name: string): ProviderHealth | undefined {
    return this.list.providers[name];
  }

  /** Whether `id` can be chosen now (known, enabled, provider up). */
  available(id: string | null): boolean {
    const model = this.find(id);
    return model !== undefined && isSelectable(model, this.groups);
  }
}

export const models = new ModelsStore();
