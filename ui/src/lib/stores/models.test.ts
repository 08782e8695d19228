import { describe, expect, it, vi } from 'vitest';
import { ApiError } from '../api';
import type { ModelOption } from '../chat/contract';
import { ModelsStore, groupModels } from './models.svelte';

const model = (id: string, provider: string, extra: Partial<ModelOption> = {}): ModelOption => ({
  id,
  name: id.split('/')[1]!,
  provider,
  provider_ok: true,
  enabled: true,
  capabilities: { chat: true, streaming: true, system_prompt: true, vision: false, embeddings: false, reasoning: false },
  context_length: null,
  size_bytes: null,
  family: null,
  ...extra,
});

const list = {
  data: [
    model('ollama/b', 'ollama'),
    model('ollama/a', 'ollama'),
    model('ollama/embed', 'ollama', { capabilities: { ...model('x/x', 'x').capabilities, chat: false, embeddings: true } }),
    model('bedrock/claude', 'bedrock', { provider_ok: false }),
  ],
  providers: { ollama: { ok: true, latency_ms: 3, detail: null }, bedrock: { ok: false, latency_ms: null, detail: 'no credentials' } },
};

describe('models', () => {
  it('groups chat models by provider and marks offline providers', () => {
    const groups = groupModels(list);
    expect(groups.map((g) => [g.provider, g.ok, g.models.map((m) => m.id)])).toEqual([
      ['bedrock', false, ['bedrock/claude']],
      ['ollama', true, ['ollama/a', 'ollama/b']],
    ]);
  });

  it('defaults to the first model of an online provider', async () => {
    const store = new ModelsStore({ list: async () => list });
    await store.load();
    expect(store.fallback).toBe('ollama/a');
    expect(store.available('bedrock/claude')).toBe(false);
    expect(store.available('ollama/b')).toBe(true);
    expect(store.available('nope')).toBe(false);
  });
});

describe('models.watch', () => {
  const empty = { data: [], providers: {} };

  it('asks again while nothing is listed, then stops once models come', async () => {
    vi.useFakeTimers();
    try {
      const lists = [empty, empty, list];
      const client = { list: vi.fn(async () => lists.shift() ?? list) };
      const store = new ModelsStore(client);
      const stop = store.watch({ retries: 5, interval: 1000 });
      await vi.advanceTimersByTimeAsync(10_000);
      expect(client.list).toHaveBeenCalledTimes(3);
      expect(store.fallback).toBe('ollama/a');
      stop();
    } finally {
      vi.useRealTimers();
    }
  });

  it('schedules nothing after being stopped while a load was in flight', async () => {
    vi.useFakeTimers();
    try {
      let release: (v: typeof empty) => void = () => undefined;
      const client = {
        list: vi.fn(() => new Promise<typeof empty>((resolve) => (release = resolve))),
      };
      const store = new ModelsStore(client);
      const stop = store.watch({ retries: 5, interval: 1000 });
      stop();
      release(empty);
      await vi.advanceTimersByTimeAsync(10_000);
      expect(client.list).toHaveBeenCalledTimes(1);
    } finally {
      vi.useRealTimers();
    }
  });

  it('stops at once when the session has ended', async () => {
    vi.useFakeTimers();
    try {
      const client = {
        list: vi.fn(async (): Promise<typeof empty> => {
          throw new ApiError(401, 'unauthorized', 'sign in');
        }),
      };
      const store = new ModelsStore(client);
      store.watch({ retries: 5, interval: 1000 });
      await vi.advanceTimersByTimeAsync(10_000);
      expect(client.list).toHaveBeenCalledTimes(1);
    } finally {
      vi.useRealTimers();
    }
  });
});
