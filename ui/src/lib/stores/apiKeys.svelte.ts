// The signed-in user's API keys (Settings → API keys). One instance per screen.
import { ApiError } from '../api';
import { keysApi } from '../endpoints';
import type { ApiKey, CreatedApiKey, NewApiKey } from '../types';

type KeysClient = Pick<typeof keysApi, 'list' | 'create' | 'revoke'>;

export class ApiKeysStore {
  keys = $state<ApiKey[]>([]);
  loading = $state(false);
  loadError = $state<ApiError | null>(null);
  /** The key just created, full secret included: shown once, until dismissed. */
  revealed = $state<CreatedApiKey | null>(null);

  readonly #client: KeysClient;

  constructor(client: KeysClient = keysApi) {
    this.#client = client;
  }

  async load(signal?: AbortSignal): Promise<void> {
    this.loading = true;
    try {
      this.keys = await this.#client.list({ signal });
      this.loadError = null;
    } catch (err) {
      if (signal?.aborted) return;
      if (!(err instanceof ApiError)) throw err;
      this.loadError = err;
    } finally {
      if (!signal?.aborted) this.loading = false;
    }
  }

  async create(input: NewApiKey): Promise<CreatedApiKey> {
    const created = await this.#client.create(input);
    this.keys = [created.api_key, ...this.keys.filter((k) => k.id !== created.api_key.id)];
    this.revealed = created;
    return created;
  }

  /** Forget the full key: from now on only its prefix is known. */
  dismiss(): void {
    this.revealed = null;
  }

  async revoke(keyId: string): Promise<void> {
    const revoked = await this.#client.revoke(keyId);
    this.keys = this.keys.map((k) => (k.id === revoked.id ? revoked : k));
    if (this.revealed?.api_key.id === keyId) this.revealed = null;
  }
}
