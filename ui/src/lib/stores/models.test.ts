import { describe, expect, it } from 'vitest';
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
