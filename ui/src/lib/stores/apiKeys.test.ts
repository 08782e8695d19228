import { describe, expect, it, vi } from 'vitest';
import { ApiError } from '../api';
import type { ApiKey } from '../types';
import { ApiKeysStore } from './apiKeys.svelte';

const key = (id: string, extra: Partial<ApiKey> = {}): ApiKey => ({
  id,
  name: `key ${id}`,
  prefix: `lh_${id}`,
  allowed_models: null,
  expires_at: null,
  last_used_at: null,
  revoked_at: null,
  created_at: '2030-01-01T00:00:00+00:00',
  ...extra,
});

function client() {
  return {
    list: vi.fn(async () => [key('a'), key('b')]),
    create: vi.fn(async () => ({ key: 'lh_secret', api_key: key('c') })),
    revoke: vi.fn(async (id: string) => key(id, { revoked_at: '2030-01-02T00:00:00+00:00' })),
  };
}

describe('ApiKeysStore', () => {
  it('loads the list', async () => {
    const store = new ApiKeysStore(client());
    await store.load();
    expect(store.keys.map((k) => k.id)).toEqual(['a', 'b']);
    expect(store.loading).toBe(false);
    expect(store.loadError).toBeNull();
  });

  it('keeps a load error for display', async () => {
    const c = client();
    c.list.mockRejectedValueOnce(new ApiError(500, 'internal_error', 'boom'));
    const store = new ApiKeysStore(c);
    await store.load();
    expect(store.loadError?.code).toBe('internal_error');
    expect(store.loading).toBe(false);
  });

  it('ignores an aborted load', async () => {
    const c = client();
    const controller = new AbortController();
    c.list.mockImplementationOnce(async () => {
      controller.abort();
      throw new DOMException('aborted', 'AbortError');
    });
    const store = new ApiKeysStore(c);
    await store.load(controller.signal);
    expect(store.loadError).toBeNull();
  });

  it('reveals a created key once, listing it first, until dismissed', async () => {
    const c = client();
    const store = new ApiKeysStore(c);
    await store.load();
    await store.create({ name: 'ci' });
    expect(c.create).toHaveBeenCalledWith({ name: 'ci' });
    expect(store.revealed?.key).toBe('lh_secret');
    expect(store.keys.map((k) => k.id)).toEqual(['c', 'a', 'b']);
    store.dismiss();
    expect(store.revealed).toBeNull();
    expect(JSON.stringify(store.keys)).not.toContain('lh_secret');
  });

  it('revoke replaces the key in place and hides a still-revealed secret', async () => {
    const store = new ApiKeysStore(client());
    await store.load();
    await store.create({});
    await store.revoke('c');
    expect(store.revealed).toBeNull();
    expect(store.keys.find((k) => k.id === 'c')?.revoked_at).not.toBeNull();
    expect(store.keys).toHaveLength(3);
  });

  it('a failed revoke changes nothing', async () => {
    const c = client();
    c.revoke.mockRejectedValueOnce(new ApiError(404, 'api_key_not_found', 'gone'));
    const store = new ApiKeysStore(c);
    await store.load();
    await expect(store.revoke('a')).rejects.toMatchObject({ code: 'api_key_not_found' });
    expect(store.keys.find((k) => k.id === 'a')?.revoked_at).toBeNull();
  });
});
