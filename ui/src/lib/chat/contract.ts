// The chat API's shapes, as llmhub/routes/api_chats.py, api_generations.py, api_search.py,
// api_usage.py and models.py send them. Types only, no runtime code; the HTTP calls are in
// ../endpoints.ts (chatApi, modelsApi, usageApi). Errors use the usual ApiError envelope.

/** GET /api/chats?archived=false&limit=50&cursor=… → {data: Chat[], next_cursor}, pinned
 *  first, then most recently updated. The sidebar groups the unpinned ones by updated_at
 *  (Today, Yesterday, Previous 7 days, Previous 30 days, Older).
 *  POST /api/chats {title?, model?, system_prompt?, temperature?, max_tokens?} → 201 {chat}.
 *  PATCH /api/chats/{id} {title?, pinned?, archived?, current_leaf_id?, model?, system_prompt?,
 *  temperature?, max_tokens?} → {chat} (per-chat settings are these fields; null clears one).
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
 *  picker groups by provider and disables models whose provider_ok is false. */
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


/** PATCH /api/chats/{id} body. */
export interface ChatUpdate {
  title?: string;
  pinned?: boolean;
  archived?: boolean;
  current_leaf_id?: string;
  model?: string | null;
  system_prompt?: string | null;
  temperature?: number | null;
  max_tokens?: number | null;
}

/** POST /api/chats body. */
export interface NewChat {
  title?: string;
  model?: string;
  system_prompt?: string;
  temperature?: number;
  max_tokens?: number;
}

export interface ProviderHealth {
  ok: boolean;
  latency_ms: number | null;
  detail: string | null;
}

export interface ModelList {
  data: ModelOption[];
  providers: Record<string, ProviderHealth>;
}

/** GET /api/admin/models: every model, disabled ones too; `available` is false for models seen
 *  before that no provider offers now. */
export interface AdminModel extends Omit<ModelOption, 'family'> {
  family?: string | null;
  available: boolean;
}

export interface LoadedModel {
  name: string;
  size_bytes: number | null;
  size_vram: number | null;
  expires_at: string | null;
}

/** GET /api/admin/providers → {providers}: health, and Ollama's models loaded in memory. */
export interface AdminProviderHealth extends ProviderHealth {
  loaded?: LoadedModel[];
  loaded_error?: string;
}

/** POST /api/admin/models/pull {name, provider} → SSE `progress` frames, then `done` {model}
 *  or `error` {message, type, code}. */
export interface PullProgress {
  status: string;
  digest: string | null;
  total: number | null;
  completed: number | null;
  percent: number | null;
}

/** GET /api/usage?from&to[&all=true|&user_id=] → one row per UTC day and model (and user when
 *  all=true: user_id and email). */
export interface UsageRow {
  day: string;
  provider: string;
  model: string;
  user_id?: string | null;
  email?: string | null;
  requests: number;
  failed: number;
  input_tokens: number;
  output_tokens: number;
  cached_tokens: number;
  exact: boolean;
}

export interface UsageTotals {
  requests: number;
  input_tokens: number;
  output_tokens: number;
  cached_tokens: number;
}

export interface UsageReport {
  from: string;
  to: string;
  user_id: string | null;
  data: UsageRow[];
  totals: UsageTotals;
}
