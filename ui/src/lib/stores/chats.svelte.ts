// The sidebar: the user's chats (pinned first, then by recent activity, grouped by day), live
// search, and rename / pin / archive / delete.
import { ApiError } from '../api';
import { chatApi } from '../endpoints';
import type { Chat, SearchHit } from '../chat/contract';

export type ChatsClient = Pick<typeof chatApi, 'list' | 'update' | 'remove' | 'search'>;

export interface ChatGroup {
  label: string;
  chats: Chat[];
}

const DAY = 86_400_000;

function startOfLocalDay(now: Date): number {
  return new Date(now.getFullYear(), now.getMonth(), now.getDate()).getTime();
}

/** Pinned, Today, Yesterday, Previous 7 days, Previous 30 days, Older (empty groups dropped).
 *  Within a group the server's order (most recent activity first) is kept. */
export function groupChats(chats: readonly Chat[], now: Date = new Date()): ChatGroup[] {
  const today = startOfLocalDay(now);
  const bounds: [string, number][] = [
    ['Today', today],
    ['Yesterday', today - DAY],
    ['Previous 7 days', today - 7 * DAY],
    ['Previous 30 days', today - 30 * DAY],
    ['Older', -Infinity],
  ];
  const groups: ChatGroup[] = [{ label: 'Pinned', chats: [] }, ...bounds.map(([label]) => ({ label, chats: [] as Chat[] }))];
  for (const chat of chats) {
    if (chat.pinned) {
      groups[0]!.chats.push(chat);
      continue;
    }
    const time = new Date(chat.updated_at).getTime();
    const at = bounds.findIndex(([, since]) => time >= since);
    groups[at === -1 ? bounds.length : at + 1]!.chats.push(chat);
  }
  return groups.filter((g) => g.chats.length > 0);
}

/** Server order: pinned first, then updated_at descending, then id descending. */
export function sortChats(chats: Chat[]): Chat[] {
  return chats.sort((a, b) => {
    if (a.pinned !== b.pinned) return a.pinned ? -1 : 1;
    if (a.updated_at !== b.updated_at) return a.updated_at < b.updated_at ? 1 : -1;
    return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
  });
}

export class ChatsStore {
  chats = $state<Chat[]>([]);
  nextCursor = $state<string | null>(null);
  loading = $state(false);
  loadError = $state<ApiError | null>(null);
  /** Show archived chats instead of the active ones. */
  archived = $state(false);

  query = $state('');
  results = $state<SearchHit[] | null>(null);
  searching = $state(false);
  searchError = $state<ApiError | null>(null);

  readonly groups = $derived(groupChats(this.chats));

  readonly #client: ChatsClient;
  #searchController: AbortController | null = null;
  #loadToken = 0;
  #titleTimers: ReturnType<typeof setTimeout>[] = [];

  constructor(client: ChatsClient = chatApi) {
    this.#client = client;
  }

  /** The first page again (after changes made elsewhere). */
  async load(): Promise<void> {
    const token = ++this.#loadToken;
    this.loading = true;
    try {
      const page = await this.#client.list({ archived: this.archived });
      if (token !== this.#loadToken) return;
      this.chats = page.data;
      this.nextCursor = page.next_cursor;
      this.loadError = null;
    } catch (err) {
      if (token !== this.#loadToken) return;
      if (!(err instanceof ApiError)) throw err;
      this.loadError = err;
    } finally {
      if (token === this.#loadToken) this.loading = false;
    }
  }

  async loadMore(): Promise<void> {
    if (this.nextCursor === null || this.loading) return;
    this.loading = true;
    try {
      const page = await this.#client.list({ archived: this.archived, cursor: this.nextCursor });
      const seen = new Set(this.chats.map((c) => c.id));
      this.chats = [...this.chats, ...page.data.filter((c) => !seen.has(c.id))];
      this.nextCursor = page.next_cursor;
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      this.loadError = err;
    } finally {
      this.loading = false;
    }
  }

  async showArchived(archived: boolean): Promise<void> {
    this.archived = archived;
    this.chats = [];
    this.nextCursor = null;
    await this.load();
  }

  /** A chat created or changed elsewhere (the conversation): put it in place. */
  upsert(chat: Chat): void {
    if (chat.archived !== this.archived) {
      this.chats = this.chats.filter((c) => c.id !== chat.id);
      return;
    }
    const others = this.chats.filter((c) => c.id !== chat.id);
    this.chats = sortChats([chat, ...others]);
  }

  /** After an answer: reload the list (activity order, and the title the server generates
   *  after a chat's first answer, which arrives a moment later). */
  activity(chatId: string, onChat?: (chat: Chat) => void): void {
    for (const timer of this.#titleTimers) clearTimeout(timer);
    this.#titleTimers = [];
    const refresh = async () => {
      await this.load();
      const chat = this.chats.find((c) => c.id === chatId);
      if (chat) onChat?.(chat);
      return chat;
    };
    void refresh();
    for (const delay of [1500, 4000, 9000]) {
      this.#titleTimers.push(
        setTimeout(() => {
          const chat = this.chats.find((c) => c.id === chatId);
          if (!chat || chat.title === 'New chat') void refresh();
        }, delay),
      );
    }
  }

  /** Stop the pending title refreshes (the sidebar is gone: signed out). */
  dispose(): void {
    for (const timer of this.#titleTimers) clearTimeout(timer);
    this.#titleTimers = [];
  }

  async rename(chatId: string, title: string): Promise<Chat> {
    const chat = await this.#client.update(chatId, { title });
    this.#replace(chat);
    return chat;
  }

  async setPinned(chatId: string, pinned: boolean): Promise<Chat> {
    const chat = await this.#client.update(chatId, { pinned });
    this.#replace(chat);
    return chat;
  }

  async setArchived(chatId: string, archived: boolean): Promise<Chat> {
    const chat = await this.#client.update(chatId, { archived });
    this.upsert(chat);
    return chat;
  }

  async remove(chatId: string): Promise<void> {
    await this.#client.remove(chatId);
    this.chats = this.chats.filter((c) => c.id !== chatId);
    if (this.results) this.results = this.results.filter((h) => h.chat_id !== chatId);
  }

  #replace(chat: Chat): void {
    this.chats = sortChats(this.chats.map((c) => (c.id === chat.id ? chat : c)));
  }

  /** Live search: each call supersedes the previous one (its request is aborted). An empty
   *  query clears the results. */
  async search(query: string): Promise<void> {
    this.query = query;
    this.#searchController?.abort();
    if (query.trim() === '') {
      this.#searchController = null;
      this.results = null;
      this.searching = false;
      this.searchError = null;
      return;
    }
    const controller = new AbortController();
    this.#searchController = controller;
    this.searching = true;
    try {
      const hits = await this.#client.search(query, { signal: controller.signal });
      if (controller.signal.aborted) return;
      this.results = hits;
      this.searchError = null;
    } catch (err) {
      if (controller.signal.aborted) return;
      if (!(err instanceof ApiError)) throw err;
      this.searchError = err;
    } finally {
      if (this.#searchController === controller) {
        this.searching = false;
        this.#searchController = null;
      }
    }
  }

  /** Search hits, one per chat (the best-ranked hit first). */
  get resultChats(): SearchHit[] {
    const seen = new Set<string>();
    return (this.results ?? []).filter((h) => !seen.has(h.chat_id) && seen.add(h.chat_id));
  }
}

export const chats = new ChatsStore();
