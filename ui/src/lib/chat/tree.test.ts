import { describe, expect, it } from 'vitest';
import { message } from '../../test/streams';
import { branchTo, indexMessages, latestLeaf, siblingsOf, switchBranch, tokensPerSecond } from './tree';

// u1 → a1 → u2 → a2
//          ↘ u2b → a2b        (an edit of u2)
//    ↘ a1b                    (a regenerated answer to u1)
const msgs = [
  message('1', { id: 'u1' }),
  message('2', { id: 'a1', parent_id: 'u1', role: 'assistant' }),
  message('3', { id: 'u2', parent_id: 'a1' }),
  message('4', { id: 'a2', parent_id: 'u2', role: 'assistant' }),
  message('5', { id: 'u2b', parent_id: 'a1' }),
  message('6', { id: 'a2b', parent_id: 'u2b', role: 'assistant' }),
  message('7', { id: 'a1b', parent_id: 'u1', role: 'assistant' }),
];

describe('message tree', () => {
  const index = indexMessages([...msgs].reverse()); // order of arrival does not matter

  it('walks a branch from the root', () => {
    expect(branchTo(index, 'a2').map((m) => m.id)).toEqual(['u1', 'a1', 'u2', 'a2']);
    expect(branchTo(index, 'missing')).toEqual([]);
    expect(branchTo(index, null)).toEqual([]);
  });

  it('orders siblings by creation', () => {
    const { siblings, position } = siblingsOf(index, index.byId.get('u2b')!);
    expect(siblings.map((m) => m.id)).toEqual(['u2', 'u2b']);
    expect(position).toBe(1);
  });

  it('switches to the latest conversation under a sibling', () => {
    expect(latestLeaf(index, 'a1')).toBe('a2b');
    expect(switchBranch(index, index.byId.get('u2b')!, -1)).toBe('a2');
    expect(switchBranch(index, index.byId.get('a1')!, 1)).toBe('a1b');
    expect(switchBranch(index, index.byId.get('a1b')!, 1)).toBeNull();
  });

  it('survives a parent cycle', () => {
    const looped = indexMessages([message('1', { id: 'x', parent_id: 'y' }), message('2', { id: 'y', parent_id: 'x' })]);
    expect(branchTo(looped, 'x').length).toBe(2);
  });

  it('computes tokens per second after the first token', () => {
    const m = message('1', {
      usage: { input_tokens: 5, output_tokens: 50, cached_tokens: 0, exact: true },
      ttft_ms: 500,
      duration_ms: 2500,
    });
    expect(tokensPerSecond(m)).toBe(25);
    expect(tokensPerSecond({ ...m, duration_ms: null })).toBeNull();
  });
});
