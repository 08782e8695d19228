import { describe, expect, it, vi, type Mocked } from 'vitest';
import { sseResponse } from '../../test/streams';
import { AdminModelsStore, type AdminModelsClient } from './adminModels.svelte';

const progress = (data: object) => `event: progress\ndata: ${JSON.stringify(data)}\n\n`;

function client(frames: string[]) {
  return {
    list: vi.fn(async () => ({ data: [], providers: {} })),
    providers: vi.fn(async () => ({ ollama: { ok: true, latency_ms: 1, detail: null, loaded: [] } })),
    update: vi.fn(),
    remove: vi.fn(),
    pull: vi.fn(async () => sseResponse(frames)),
  } as unknown as Mocked<AdminModelsClient>;
}

describe('AdminModelsStore pulls', () => {
  it('follows progress to 100% and reloads the catalog', async () => {
    const c = client([
      progress({ status: 'pulling manifest', digest: null, total: null, completed: null, percent: null }),
      progress({ status: 'pulling abc', digest: 'sha256:abc', total: 10, completed: 5, percent: 50 }),
      progress({ status: 'verifying sha256 digest', digest: null, total: null, completed: null, percent: null }),
      'event: done\ndata: {"model":"tiny"}\n\n',
    ]);
    const store = new AdminModelsStore(c);
    expect(await store.startPull('tiny')).toBe(true);
    expect(store.pull).toEqual({ name: 'tiny', status: 'success', percent: 100, phase: 'done', error: null });
    expect(c.list).toHaveBeenCalled();
  });

  it('shows a pull error', async () => {
    const c = client([
      progress({ status: 'pulling manifest', digest: null, total: null, completed: null, percent: null }),
      'event: error\ndata: {"message":"file does not exist","type":"not_found","code":null}\n\n',
    ]);
    const store = new AdminModelsStore(c);
    expect(await store.startPull('nope')).toBe(false);
    expect(store.pull).toMatchObject({ phase: 'error', error: 'file does not exist' });
  });

  it('treats a stream that ends without done as a failure', async () => {
    const store = new AdminModelsStore(client([]));
    expect(await store.startPull('x')).toBe(false);
    expect(store.pull?.phase).toBe('error');
  });
});
