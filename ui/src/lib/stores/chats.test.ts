import { describe, expect, it, vi, type Mocked } from 'vitest';
import { ApiError } from '../api';
import type { Chat, SearchHit } from '../chat/contract';
import { ChatsStore, groupChats, type ChatsClient } from './chats.svelte';

const chat = (id: string, updated_at: string, extra: Partial<Chat> = {}): Chat => ({
  id,
  title: `chat ${id}`,
  model: null,
  system_prompt: null,
  temperature: null,
  max_tokens: null,
  pinned: false,
  archived: false,
  current_leaf_id: null,
  created_at: updated_at,
  updated_at,
  ...extra,
});

describe('groupChats', () => {
  it('groups by local day, pinned first', () => {
    const now = new Date(2030, 5, 15, 12, 0);
    const at = (days: number) => new Date(2030, 5, 15 - days, 9, 0).toISOString();
    const groups = groupChats(
      [
        chat('p', at(100), { pinned: true }),
        chat('t', at(0)),
        chat('y', at(1)),
        chat('w', at(5)),
        chat('m', at(20)),
        chat('o', at(45)),
      ],
      now,
    );
    expect(groups.map((g) => [g.label, g.chats.map((c) => c.id)])).toEqual([
      ['Pinned', ['p']],
      ['Today', ['t']],
      ['Yesterday', ['y']],
      ['Previous 7 days', ['w']],
      ['Previous 30 days', ['m']],
      ['Older', ['o']],
    ]);
  });
});

function client() {
  return {
    list: vi.fn(async () => ({ data: [chat('b', '2030-01-02T00:00:00Z'), chat('a', '2030-01-01T00:00:00Z')], next_cursor: 'c1' })),
    update: vi.fn(async (id: string, changes: Partial<Chat>) => chat(id, id === 'a' ? '2030-01-01T00:00:00Z' : '2030-01-02T00:00:00Z', changes)),
    remove: vi.fn(async () => undefined),
    search: vi.fn(),
  } as unknown as Mocked<ChatsClient>;
}

describe('ChatsStore', () => {
  it('loads, pages, renames, pins (to the top) and deletes', async () => {
    const c = client();
    const store = new ChatsStore(c);
    await store.load();
    expect(store.chats.map((x) => x.id)).toEqual(['b', 'a']);
    c.list.mockResolvedValueOnce({ data: [chat('z', '2029-01-01T00:00:00Z'), chat('a', '2030-01-01T00:00:00Z')], next_cursor: null });
    await store.loadMore();
    expect(c.list).toHaveBeenLastCalledWith({ archived: false, cursor: 'c1' });
    expect(store.chats.map((x) => x.id)).toEqual(['b', 'a', 'z']);
    expect(store.nextCursor).toBeNull();

    await store.rename('a', 'Renamed');
    expect(store.chats.find((x) => x.id === 'a')?.title).toBe('Renamed');
    await store.setPinned('a', true);
    expect(store.chats[0]!.id).toBe('a');
    await store.remove('b');
    expect(store.chats.map((x) => x.id)).toEqual(['a', 'z']);
  });

  it('drops an archived chat from the active list', async () => {
    const c = client();
    const store = new ChatsStore(c);
    await store.load();
    await store.setArchived('b', true);
    expect(store.chats.map((x) => x.id)).toEqual(['a']);
  });

  it('searches live: a newer query supersedes an older one', async () => {
    const c = client();
    const hit = (chat_id: string, message_id: string): SearchHit => ({
      chat_id, chat_title: chat_id, archived: false, message_id, role: 'user', rank: 1, created_at: '', snippet: 'x',
    });
    let releaseOld!: (hits: SearchHit[]) => void;
    c.search
      .mockImplementationOnce((_q: string, options?: { signal?: AbortSignal }) =>
        new Promise((resolve, reject) => {
          releaseOld = resolve;
          options?.signal?.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
        }))
      .mockResolvedValueOnce([hit('a', '1'), hit('a', '2'), hit('b', '3')]);
    const store = new ChatsStore(c);
    const old = store.search('fo');
    await store.search('fox');
    releaseOld([hit('z', '9')]);
    await old;
    expect(store.resultChats.map((h) => h.chat_id)).toEqual(['a', 'b']);
    expect(store.searching).toBe(false);
    await store.search('  ');
    expect(store.results).toBeNull();
  });

  it('keeps a search error', async () => {
    const c = client();
    c.search.mockRejectedValue(new ApiError(400, 'validation_error', 'q: too long'));
    const store = new ChatsStore(c);
    await store.search('x');
    expect(store.searchError?.code).toBe('validation_error');
  });
});
