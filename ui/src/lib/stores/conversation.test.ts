import { describe, expect, it, vi, type Mocked } from 'vitest';
import { ApiError } from '../api';
import type { Chat, Message } from '../chat/contract';
import { frame, liveResponse, message, sseResponse, until } from '../../test/streams';
import { ConversationStore, type ConversationClient } from './conversation.svelte';

const chat = (extra: Partial<Chat> = {}): Chat => ({
  id: 'chat1',
  title: 'New chat',
  model: 'ollama/m',
  system_prompt: null,
  temperature: null,
  max_tokens: null,
  pinned: false,
  archived: false,
  current_leaf_id: null,
  created_at: '2030-01-01T00:00:00+00:00',
  updated_at: '2030-01-01T00:00:00+00:00',
  ...extra,
});

const usage = { input_tokens: 3, output_tokens: 4, cached_tokens: 0, exact: true };

function startFrame(user: Message | null, assistant: Message): string {
  return frame(1, 'start', {
    chat_id: 'chat1',
    generation_id: assistant.id,
    model: 'ollama/m',
    user_message: user,
    assistant_message: assistant,
  });
}

function endFrame(seq: number, id: string, status = 'complete'): string {
  return frame(seq, 'end', { message_id: id, status, stop_reason: 'stop', usage, ttft_ms: 10, duration_ms: 100, error: null });
}

function client(overrides: Partial<ConversationClient> = {}) {
  return {
    create: vi.fn(async () => chat()),
    get: vi.fn(async () => ({ ...chat(), messages: [] as Message[] })),
    update: vi.fn(async (_id: string, changes: object) => chat(changes as Partial<Chat>)),
    send: vi.fn(),
    regenerate: vi.fn(),
    follow: vi.fn(),
    stop: vi.fn(),
    ...overrides,
  } as unknown as Mocked<ConversationClient>;
}

const u1 = message('1', { id: 'u1', content: 'hello' });
const a1 = (extra: Partial<Message> = {}) =>
  message('2', { id: 'a1', parent_id: 'u1', role: 'assistant', content: '', status: 'streaming', ...extra });

describe('ConversationStore', () => {
  it('creates the chat on the first message and streams the answer', async () => {
    const c = client();
    c.send.mockResolvedValue(
      sseResponse([
        startFrame(u1, a1()),
        frame(2, 'reasoning', { text: 'hmm' }),
        frame(3, 'delta', { text: 'Hi ' }),
        frame(4, 'delta', { text: 'there' }),
        endFrame(5, 'a1'),
      ]),
    );
    const changed = vi.fn();
    const store = new ConversationStore(c, { onChatChanged: changed });
    await store.open(null);
    store.model = 'ollama/m';
    store.draftSettings = { system_prompt: 'Be brief', temperature: 0.5, max_tokens: null };
    expect(await store.send('hello')).toBe(true);
    expect(c.create).toHaveBeenCalledWith({ model: 'ollama/m', system_prompt: 'Be brief', temperature: 0.5 });
    expect(c.send).toHaveBeenCalledWith('chat1', { content: 'hello', model: 'ollama/m' }, expect.anything());
    expect(store.branch.map((m) => m.id)).toEqual(['u1', 'a1']);
    const answer = store.branch[1]!;
    expect(answer.content).toBe('Hi there');
    expect(answer.reasoning).toBe('hmm');
    expect(answer.status).toBe('complete');
    expect(answer.usage).toEqual(usage);
    expect(store.busy).toBe(false);
    expect(changed).toHaveBeenCalledWith(expect.objectContaining({ id: 'chat1' }), true);
  });

  it('sends below the shown leaf, and edits below the edited message’s parent', async () => {
    const done = message('2', { id: 'a1', parent_id: 'u1', role: 'assistant', content: 'ok' });
    const c = client({
      get: vi.fn(async () => ({ ...chat({ current_leaf_id: 'a1' }), messages: [u1, done] })),
    });
    c.send.mockImplementation(async () => sseResponse([]));
    const store = new ConversationStore(c);
    await store.open('chat1');
    await store.send('next');
    expect(c.send.mock.calls[0]![1]).toMatchObject({ content: 'next', parent_id: 'a1' });
    await store.edit(u1, 'hello again');
    expect(c.send.mock.calls[1]![1]).toMatchObject({ content: 'hello again', parent_id: null });
  });

  it('stops: keeps the partial answer', async () => {
    const live = liveResponse();
    const c = client();
    c.send.mockResolvedValue(live.response);
    c.stop.mockImplementation(async () => {
      live.push(endFrame(3, 'a1', 'stopped'));
      live.close();
      return a1({ content: 'Part', status: 'stopped' });
    });
    const store = new ConversationStore(c);
    await store.open(null);
    const sending = store.send('hello');
    live.push(startFrame(u1, a1()));
    live.push(frame(2, 'delta', { text: 'Part' }));
    await until(() => store.branch[1]?.content === 'Part', 'the first delta');
    expect(store.streamingId).toBe('a1');
    await store.stop();
    await sending;
    expect(c.stop).toHaveBeenCalledWith('a1');
    expect(store.branch[1]).toMatchObject({ content: 'Part', status: 'stopped' });
    expect(store.streamingId).toBeNull();
  });

  it('reattaches to a running answer after a reload, replaying from the start', async () => {
    const c = client({
      get: vi.fn(async () => ({ ...chat({ current_leaf_id: 'a1' }), messages: [u1, a1({ content: 'Hi th' })] })),
    });
    c.follow.mockResolvedValue(
      sseResponse([
        startFrame(u1, a1()),
        frame(2, 'delta', { text: 'Hi th' }),
        frame(3, 'delta', { text: 'ere' }),
        endFrame(4, 'a1'),
      ]),
    );
    const store = new ConversationStore(c);
    await store.open('chat1');
    expect(c.follow).toHaveBeenCalledWith('a1', 0, expect.anything());
    expect(store.branch[1]).toMatchObject({ content: 'Hi there', status: 'complete' });
  });

  it('picks a dropped stream up again after the last event it saw', async () => {
    const c = client();
    c.send.mockResolvedValue(sseResponse([startFrame(u1, a1()), frame(2, 'delta', { text: 'Hi ' })]));
    c.follow.mockResolvedValue(sseResponse([frame(3, 'delta', { text: 'there' }), endFrame(4, 'a1')]));
    const store = new ConversationStore(c);
    await store.open(null);
    expect(await store.send('hello')).toBe(true);
    expect(c.follow).toHaveBeenCalledWith('a1', 2, expect.anything());
    expect(store.branch[1]!.content).toBe('Hi there');
  });

  it('regenerates and switches between branches', async () => {
    const first = message('2', { id: 'a1', parent_id: 'u1', role: 'assistant', content: 'one' });
    const c = client({ get: vi.fn(async () => ({ ...chat({ current_leaf_id: 'a1' }), messages: [u1, first] })) });
    const second = message('3', { id: 'a2', parent_id: 'u1', role: 'assistant', content: '', status: 'streaming' });
    c.regenerate.mockResolvedValue(sseResponse([startFrame(null, second), frame(2, 'delta', { text: 'two' }), endFrame(3, 'a2')]));
    const store = new ConversationStore(c);
    await store.open('chat1');
    await store.regenerate(first);
    expect(store.branch.map((m) => m.content)).toEqual(['hello', 'two']);
    await store.switchBranch(store.branch[1]!, -1);
    expect(store.branch.map((m) => m.content)).toEqual(['hello', 'one']);
    expect(c.update).toHaveBeenCalledWith('chat1', { current_leaf_id: 'a1' });
  });

  it('reports a refused send and does not stay busy', async () => {
    const c = client();
    c.send.mockRejectedValue(new ApiError(429, 'rate_limited', 'slow down', { retryAfter: 5 }));
    const store = new ConversationStore(c);
    await store.open(null);
    expect(await store.send('hello')).toBe(false);
    expect(store.error).toMatch(/Try again in 5 seconds/);
    expect(store.busy).toBe(false);
  });

  it('ignores a late load when another chat was opened meanwhile', async () => {
    let release!: () => void;
    const c = client({
      get: vi.fn(
        (id: string) =>
          new Promise((resolve) => {
            const value = { ...chat({ id, title: id }), messages: [] };
            if (id === 'slow') release = () => resolve(value);
            else resolve(value);
          }),
      ) as unknown as ConversationClient['get'],
    });
    const store = new ConversationStore(c);
    const slow = store.open('slow');
    await store.open('fast');
    release();
    await slow;
    expect(store.chat?.id).toBe('fast');
  });

  it('keeps settings for a chat not created yet', async () => {
    const c = client();
    const store = new ConversationStore(c);
    await store.open(null);
    await store.update({ system_prompt: 'Pirate', max_tokens: 50 });
    expect(store.settings).toEqual({ system_prompt: 'Pirate', temperature: null, max_tokens: 50 });
    expect(c.update).not.toHaveBeenCalled();
  });
});
