// The open chat: its message tree, the branch shown, and the answer being streamed.
//
// A generation runs on the server whether or not anyone listens: closing our stream (leaving the
// chat, reloading) does not stop it, and opening the chat again reattaches to it through
// GET /api/generations/{id}/stream, which replays every frame from the start. Stopping is an
// explicit POST …/stop (the Stop button, Esc).
import { ApiError } from '../api';
import { chatApi } from '../endpoints';
import { describeError } from '../errors';
import type {
  Chat,
  ChatUpdate,
  ChatWithMessages,
  GenerationEvent,
  Message,
  NewChat,
} from '../chat/contract';
import { readGeneration } from '../chat/stream';
import { branchTo, indexMessages, switchBranch, type MessageIndex } from '../chat/tree';

export type ConversationClient = Pick<
  typeof chatApi,
  'create' | 'get' | 'update' | 'send' | 'regenerate' | 'follow' | 'stop'
>;

export interface ConversationHooks {
  /** A chat was created, changed or had activity (the sidebar refreshes its entry). */
  onChatChanged?: (chat: Chat, activity: boolean) => void;
}

/** How often a dropped stream is picked up again before giving up. */
const MAX_RECONNECTS = 3;

export type ChatSettings = Pick<Chat, 'system_prompt' | 'temperature' | 'max_tokens'>;

export class ConversationStore {
  chat = $state<Chat | null>(null);
  messages = $state<Message[]>([]);
  loading = $state(false);
  loadError = $state<ApiError | null>(null);
  /** The assistant message being streamed, while we follow it. */
  streamingId = $state<string | null>(null);
  /** Sending: between the click and the first frame. */
  sending = $state(false);
  /** The last failed action, for display. */
  error = $state<string | null>(null);
  /** The model the next message goes to (the chat's own, or the picker's choice). */
  model = $state<string | null>(null);
  /** Settings for a chat not created yet: sent with its creation. */
  draftSettings = $state<ChatSettings>({ system_prompt: null, temperature: null, max_tokens: null });

  readonly index: MessageIndex = $derived(indexMessages(this.messages));
  readonly branch: Message[] = $derived(branchTo(this.index, this.chat?.current_leaf_id ?? null));
  readonly busy = $derived(this.sending || this.streamingId !== null);
  readonly settings: ChatSettings = $derived(
    this.chat
      ? {
          system_prompt: this.chat.system_prompt,
          temperature: this.chat.temperature,
          max_tokens: this.chat.max_tokens,
        }
      : this.draftSettings,
  );

  readonly #client: ConversationClient;
  readonly #hooks: ConversationHooks;
  #controller: AbortController | null = null;
  #loadToken = 0;

  constructor(client: ConversationClient = chatApi, hooks: ConversationHooks = {}) {
    this.#client = client;
    this.#hooks = hooks;
  }

  set hooks(hooks: ConversationHooks) {
    Object.assign(this.#hooks, hooks);
  }

  get chatId(): string | null {
    return this.chat?.id ?? null;
  }

  /** Show `chatId` (null: a new, empty chat). Re-opening the chat shown is a no-op. */
  async open(chatId: string | null): Promise<void> {
    if (chatId !== null && chatId === this.chat?.id) return;
    this.#detach();
    const token = ++this.#loadToken;
    this.error = null;
    this.loadError = null;
    this.chat = null;
    this.messages = [];
    if (chatId === null) {
      this.loading = false;
      this.draftSettings = { system_prompt: null, temperature: null, max_tokens: null };
      return;
    }
    this.loading = true;
    try {
      const loaded = await this.#client.get(chatId);
      if (token !== this.#loadToken) return;
      this.#adopt(loaded);
    } catch (err) {
      if (token !== this.#loadToken) return;
      if (!(err instanceof ApiError)) throw err;
      this.loadError = err;
    } finally {
      if (token === this.#loadToken) this.loading = false;
    }
    if (token === this.#loadToken) await this.reattach();
  }

  #adopt(loaded: ChatWithMessages): void {
    const { messages, ...chat } = loaded;
    this.chat = chat;
    this.messages = messages;
    this.model = chat.model;
  }

  /** Follow the answer still being generated on the shown branch, if there is one. */
  async reattach(): Promise<void> {
    const running = [...this.branch].reverse().find((m) => m.role === 'assistant' && m.status === 'streaming');
    if (!running || this.streamingId !== null) return;
    await this.#run((signal) => this.#client.follow(running.id, 0, { signal }), running.id);
  }

  /** Send a new user message (below the shown branch's leaf, or below `parentId` when given:
   *  editing a message is sending below its parent). Creates the chat when there is none. */
  async send(content: string, options: { parentId?: string | null } = {}): Promise<boolean> {
    if (this.busy || content.trim() === '') return false;
    this.error = null;
    this.sending = true;
    let chat = this.chat;
    try {
      if (chat === null) {
        const body: NewChat = {};
        if (this.model) body.model = this.model;
        const { system_prompt, temperature, max_tokens } = this.draftSettings;
        if (system_prompt) body.system_prompt = system_prompt;
        if (temperature !== null) body.temperature = temperature;
        if (max_tokens !== null) body.max_tokens = max_tokens;
        chat = await this.#client.create(body);
        this.chat = chat;
        this.messages = [];
        this.#hooks.onChatChanged?.(chat, true);
      }
    } catch (err) {
      this.sending = false;
      this.error = describeError(err, { model_required: 'Choose a model first.' });
      return false;
    }
    const chatId = chat.id;
    const body: { content: string; parent_id?: string | null; model?: string } = { content };
    if (options.parentId !== undefined) body.parent_id = options.parentId;
    else if (this.branch.length > 0) body.parent_id = this.branch[this.branch.length - 1]!.id;
    if (this.model) body.model = this.model;
    return this.#run((signal) => this.#client.send(chatId, body, { signal }), null);
  }

  /** Another answer beside `message` (an answer) or to it (a question). */
  async regenerate(message: Message): Promise<boolean> {
    const chat = this.chat;
    if (!chat || this.busy) return false;
    this.error = null;
    this.sending = true;
    const body = this.model ? { model: this.model } : {};
    return this.#run((signal) => this.#client.regenerate(chat.id, message.id, body, { signal }), null);
  }

  /** Edit-and-resend: the new text as a sibling of `message`, the old branch kept. */
  edit(message: Message, content: string): Promise<boolean> {
    return this.send(content, { parentId: message.parent_id });
  }

  /** Stop the answer being generated; the partial answer is kept. */
  async stop(): Promise<void> {
    const id = this.streamingId;
    if (id === null) return;
    try {
      const message = await this.#client.stop(id);
      this.#upsert(message);
    } catch (err) {
      this.error = describeError(err);
    }
  }

  /** Show the previous (-1) or next (+1) sibling of `message` and its latest conversation. */
  async switchBranch(message: Message, delta: number): Promise<void> {
    const chat = this.chat;
    if (!chat || this.busy) return;
    const leaf = switchBranch(this.index, message, delta);
    if (leaf === null) return;
    this.chat = { ...chat, current_leaf_id: leaf };
    try {
      await this.#client.update(chat.id, { current_leaf_id: leaf });
    } catch (err) {
      this.error = describeError(err);
    }
    await this.reattach();
  }

  /** Change the model; an existing chat remembers it. */
  async setModel(model: string): Promise<void> {
    this.model = model;
    if (this.chat && this.chat.model !== model) await this.update({ model });
  }

  /** PATCH the chat (settings, title…); for a chat not created yet, settings are kept. */
  async update(changes: ChatUpdate): Promise<void> {
    if (!this.chat) {
      const draft = { ...this.draftSettings };
      if ('system_prompt' in changes) draft.system_prompt = changes.system_prompt ?? null;
      if ('temperature' in changes) draft.temperature = changes.temperature ?? null;
      if ('max_tokens' in changes) draft.max_tokens = changes.max_tokens ?? null;
      this.draftSettings = draft;
      return;
    }
    const updated = await this.#client.update(this.chat.id, changes);
    if (this.chat?.id === updated.id) this.chat = updated;
    this.#hooks.onChatChanged?.(updated, false);
  }

  /** The sidebar learned newer chat fields (a generated title, a rename). */
  refreshChat(chat: Chat): void {
    if (this.chat?.id === chat.id) {
      this.chat = { ...this.chat, title: chat.title, pinned: chat.pinned, archived: chat.archived };
    }
  }

  /** Stop listening (the generation goes on on the server). */
  #detach(): void {
    this.#controller?.abort();
    this.#controller = null;
    this.streamingId = null;
    this.sending = false;
  }

  /** Read a generation stream to its end, reconnecting (with Last-Event-ID) if it drops. */
  async #run(
    start: (signal: AbortSignal) => Promise<Response>,
    generationId: string | null,
  ): Promise<boolean> {
    const controller = new AbortController();
    this.#controller?.abort();
    this.#controller = controller;
    const { signal } = controller;
    let id = generationId;
    let lastSeq = 0;
    let ended = false;
    let reconnects = 0;
    let open: (signal: AbortSignal) => Promise<Response> = start;
    if (id !== null) this.streamingId = id;
    try {
      for (;;) {
        const response = await open(signal);
        for await (const { seq, event } of readGeneration(response.body!, signal)) {
          if (seq !== null && seq > 0) lastSeq = seq;
          if (event.event === 'start') id = event.data.generation_id;
          this.#apply(event);
          if (event.event === 'end') ended = true;
        }
        if (ended || id === null || reconnects >= MAX_RECONNECTS) break;
        reconnects += 1;
        const generation = id;
        const after = lastSeq;
        open = (s) => this.#client.follow(generation, after, { signal: s });
      }
      if (!ended && id !== null) this.error = 'The connection to the answer was lost. Reload to see it.';
      return ended;
    } catch (err) {
      if (signal.aborted) return false;
      this.error = describeError(err, {
        model_required: 'Choose a model first.',
        model_not_found: 'That model is not available. Choose another one.',
      });
      return false;
    } finally {
      if (this.#controller === controller) {
        this.#controller = null;
        this.streamingId = null;
        this.sending = false;
        if (this.chat) this.#hooks.onChatChanged?.(this.chat, true);
      }
    }
  }

  #find(id: string): Message | undefined {
    return this.messages.find((m) => m.id === id);
  }

  #upsert(message: Message): void {
    const i = this.messages.findIndex((m) => m.id === message.id);
    if (i === -1) this.messages.push(message);
    else this.messages[i] = message;
  }

  #apply(event: GenerationEvent): void {
    switch (event.event) {
      case 'start': {
        const { user_message, assistant_message, chat_id } = event.data;
        if (this.chat?.id !== chat_id) return;
        if (user_message) this.#upsert(user_message);
        this.#upsert(assistant_message);
        this.chat = { ...this.chat, current_leaf_id: assistant_message.id };
        this.streamingId = assistant_message.id;
        this.sending = false;
        return;
      }
      case 'delta':
      case 'reasoning': {
        const target = this.streamingId ? this.#find(this.streamingId) : undefined;
        if (!target) return;
        if (event.event === 'delta') target.content += event.data.text;
        else target.reasoning = (target.reasoning ?? '') + event.data.text;
        return;
      }
      case 'snapshot':
        if (event.data.message.chat_id === this.chat?.id) this.#upsert(event.data.message);
        return;
      case 'end': {
        const target = this.#find(event.data.message_id);
        if (target) {
          target.status = event.data.status;
          target.stop_reason = event.data.stop_reason;
          target.usage = event.data.usage;
          target.ttft_ms = event.data.ttft_ms;
          target.duration_ms = event.data.duration_ms;
          target.error = event.data.error;
        }
        if (this.streamingId === event.data.message_id) this.streamingId = null;
        return;
      }
    }
  }
}

export const conversation = new ConversationStore();
