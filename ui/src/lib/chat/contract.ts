// The chat API as the chat screens will use it. Types only, no runtime code.
//
// Written from the server's in-progress code (llmhub/routes/api_chats.py, api_generations.py,
// api_search.py, models.py, api_usage.py); re-check against the shipped server before building
// on it. Plan for the screens:
//   src/lib/stores/chats.svelte.ts         sidebar list (paged), create, rename, pin, archive, delete
//   src/lib/stores/conversation.svelte.ts  one open chat: message tree, current branch, streaming
//   src/lib/stores/models.svelte.ts        model picker, grouped by provider
// replacing the placeholders in src/screens/chat/. Errors use the usual ApiError envelope.

/** GET /api/chats?archived=false&limit=50&cursor=… → {data: Chat[], next_cursor}, pinned
 *  first, then most recently updated. The sidebar groups the unpinned ones by updated_at
 *  (Today, Yesterday, Previous 7 days, Previous 30 days, Older).
 *  POST /api/chats {title?, model?, system_prompt?, temperature?, max_tokens?} → 201 {chat}.
 *  PATCH /api/chats/{id} {title?, pinned?, archived?, current_leaf_id?, model?, system_prompt?,
 *  temperature?, max_tokens?} → {chat} (per-chat settings are these fields).
 *  DELETE /api/chats/{id} → 204 (stops its running generations first). */
export interface Chat {
  id: string;
  title: string;
  model: string | null;
  system_prompt: string | null;
  temperature: number | null;
  max_tokens: number | null;
  pinned: boolean;
  archived: boolean;
  /** The leaf of the branch last shown; PATCH it when the user switches branch. */
  current_leaf_id: string | null;
  created_at: string;
  updated_at: string;
}

export interface ChatPage {
  data: Chat[];
  next_cursor: string | null;
}

export type MessageRole = 'system' | 'user' | 'assistant';
export type MessageStatus = 'complete' | 'streaming' | 'stopped' | 'error' | 'interrupted';

export interface Usage {
  input_tokens: number;
  output_tokens: number;
  cached_tokens: number;
  /** False when the provider gave no exact counts (estimated). */
  exact: boolean;
}

/** Messages form a tree through parent_id; siblings (same parent_id, ordered by created_at)
 *  are the branches shown as ‹ 2/3 ›. */
export interface Message {
  id: string;
  chat_id: string;
  parent_id: string | null;
  role: MessageRole;
  content: string;
  /** The model's reasoning ("thinking"), shown in a collapsible block. */
  reasoning: string | null;
  attachments: unknown;
  model: string | null;
  status: MessageStatus;
  error: string | null;
  stop_reason: string | null;
  usage: Usage | null;
  /** Time to first token and total generation time; tokens/s = output_tokens / duration. */
  ttft_ms: number | null;
  duration_ms: number | null;
  created_at: string;
  updated_at: string;
}

/** GET /api/chats/{id} → {chat: ChatWithMessages}: every message of every branch. */
export interface ChatWithMessages extends Chat {
  messages: Message[];
}

/** POST /api/chats/{id}/messages {content, parent_id?, model?}: a user message under
 *  parent_id (edit-and-resend = the edited message's parent_id, i.e. a new branch) and its
 *  answer. POST /api/chats/{id}/messages/{message_id}/regenerate {model?}: a new answer
 *  beside message_id. Both reply text/event-stream (read with readSse from lib/sse.ts), each
 *  frame with a numeric `id:`. The generation id is the assistant message id:
 *  GET /api/generations/{id}/stream (Last-Event-ID header or ?last_event_id=) reattaches after
 *  a reload (a finished one answers `snapshot` then `end`); POST /api/generations/{id}/stop →
 *  {message} stops it (Esc / the Stop button). Closing the stream alone does not stop it. */
export type GenerationEvent =
  | {
      event: 'start';
      data: {
        chat_id: string;
        generation_id: string;
        model: string;
        user_message: Message | null;
        assistant_message: Message;
      };
    }
  | { event: 'delta'; data: { text: string } }
  | { event: 'reasoning'; data: { text: string } }
  | { event: 'snapshot'; data: { message: Message } }
  | {
      event: 'end';
      data: {
        message_id: string;
        status: MessageStatus;
        stop_reason: string | null;
        usage: Usage;
        ttft_ms: number | null;
        duration_ms: number | null;
        error: string | null;
      };
    };

/** GET /api/search?q=…&limit=20 → {data: SearchHit[]}, for the sidebar's live search. */
export interface SearchHit {
  chat_id: string;
  chat_title: string;
  archived: boolean;
  message_id: string;
  role: MessageRole;
  rank: number;
  created_at: string;
  /** Server-escaped text with <mark> around matches; still pass it through DOMPurify. */
  snippet: string;
}

/** GET /api/models → {data: ModelOption[], providers: {name: {ok, latency_ms, detail}}}: the
 *  picker groups by provider and disables models whose provider_ok is false. Admins also have
 *  GET /api/admin/models, PATCH/DELETE /api/admin/models/{id}, POST /api/admin/models/pull
 *  {name, provider} (SSE: progress {status, digest, total, completed, percent}, then done or
 *  error) and GET /api/admin/providers. */
export interface ModelOption {
  id: string;
  name: string;
  provider: string;
  provider_ok: boolean;
  enabled: boolean;
  capabilities: {
    chat: boolean;
    streaming: boolean;
    system_prompt: boolean;
    vision: boolean;
    embeddings: boolean;
    reasoning: boolean;
  };
  context_length: number | null;
  size_bytes: number | null;
  family: string | null;
}
