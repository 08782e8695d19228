// Typed wrappers for every JSON endpoint the UI calls. All HTTP goes through ./api.ts (one
// place for credentials, CSRF and ApiError mapping); this file only names paths and types.
import { api, requestStream, type RequestOptions } from './api';
import type {
  AdminModel,
  AdminProviderHealth,
  Chat,
  ChatPage,
  ChatUpdate,
  ChatWithMessages,
  Message,
  ModelList,
  NewChat,
  ProviderHealth,
  SearchHit,
  UsageReport,
} from './chat/contract';
import type {
  ApiKey,
  CreatedApiKey,
  Limits,
  ListResponse,
  NewApiKey,
  Role,
  SessionInfo,
  SignupResult,
  User,
  UserUpdate,
} from './types';

const id = (value: string) => encodeURIComponent(value);
/** Model ids contain '/' and ':' (`ollama/llama3.2:1b`); the route takes the rest of the path. */
const modelPath = (value: string) => value.split('/').map(encodeURIComponent).join('/');

export const authApi = {
  me: (options?: RequestOptions) => api.get<SessionInfo>('/api/auth/me', options),
  signup: (body: { email: string; password: string; display_name?: string }) =>
    api.post<SignupResult>('/api/auth/signup', body),
  login: (body: { email: string; password: string }) =>
    api.post<SessionInfo>('/api/auth/login', body),
  logout: () => api.post<{ ok: true }>('/api/auth/logout'),
  logoutEverywhere: () =>
    api.post<{ ok: true; sessions_ended: number }>('/api/auth/logout-everywhere'),
  changePassword: (body: { current_password: string; new_password: string }) =>
    api.post<SessionInfo>('/api/auth/password', body),
};

export const keysApi = {
  list: async (options?: RequestOptions) =>
    (await api.get<ListResponse<ApiKey>>('/api/keys', options)).data,
  create: (body: NewApiKey) => api.post<CreatedApiKey>('/api/keys', body),
  revoke: async (keyId: string) =>
    (await api.delete<{ api_key: ApiKey }>(`/api/keys/${id(keyId)}`)).api_key,
};

export const adminApi = {
  listUsers: async (role?: Role, options?: RequestOptions) =>
    (
      await api.get<ListResponse<User>>(
        role ? `/api/admin/users?role=${encodeURIComponent(role)}` : '/api/admin/users',
        options,
      )
    ).data,
  updateUser: async (userId: string, changes: UserUpdate) =>
    (await api.patch<{ user: User }>(`/api/admin/users/${id(userId)}`, changes)).user,
  resetPassword: (userId: string, password: string) =>
    api.post<{ ok: true }>(`/api/admin/users/${id(userId)}/password`, { password }),
  deleteUser: (userId: string) => api.delete<{ ok: true }>(`/api/admin/users/${id(userId)}`),
  getLimits: async (options?: RequestOptions) =>
    (await api.get<{ limits: Limits }>('/api/admin/limits', options)).limits,
  putLimits: async (limits: Partial<Limits>) =>
    (await api.put<{ limits: Limits }>('/api/admin/limits', limits)).limits,
};

// --- chats ----------------------------------------------------------------------------------

export const chatApi = {
  list: (params: { archived?: boolean; limit?: number; cursor?: string | null } = {}, options?: RequestOptions) => {
    const query = new URLSearchParams({ archived: String(params.archived ?? false) });
    if (params.limit) query.set('limit', String(params.limit));
    if (params.cursor) query.set('cursor', params.cursor);
    return api.get<ChatPage>(`/api/chats?${query}`, options);
  },
  create: async (body: NewChat) => (await api.post<{ chat: Chat }>('/api/chats', body)).chat,
  get: async (chatId: string, options?: RequestOptions) =>
    (await api.get<{ chat: ChatWithMessages }>(`/api/chats/${id(chatId)}`, options)).chat,
  update: async (chatId: string, changes: ChatUpdate) =>
    (await api.patch<{ chat: Chat }>(`/api/chats/${id(chatId)}`, changes)).chat,
  remove: (chatId: string) => api.delete<void>(`/api/chats/${id(chatId)}`),
  search: async (q: string, options?: RequestOptions) =>
    (await api.get<ListResponse<SearchHit>>(`/api/search?${new URLSearchParams({ q, limit: '20' })}`, options))
      .data,
  /** SSE: a user message under parent_id (omitted: the current leaf; null: a new root). */
  send: (chatId: string, body: { content: string; parent_id?: string | null; model?: string }, options?: RequestOptions) =>
    requestStream('POST', `/api/chats/${id(chatId)}/messages`, body, options),
  regenerate: (chatId: string, messageId: string, body: { model?: string }, options?: RequestOptions) =>
    requestStream('POST', `/api/chats/${id(chatId)}/messages/${id(messageId)}/regenerate`, body, options),
  follow: (generationId: string, lastEventId = 0, options?: RequestOptions) =>
    requestStream(
      'GET',
      `/api/generations/${id(generationId)}/stream?last_event_id=${lastEventId}`,
      undefined,
      options,
    ),
  stop: async (generationId: string) =>
    (await api.post<{ message: Message }>(`/api/generations/${id(generationId)}/stop`)).message,
};

export const modelsApi = {
  list: (options?: RequestOptions) => api.get<ModelList>('/api/models', options),
};

export const adminModelsApi = {
  list: (options?: RequestOptions) =>
    api.get<{ data: AdminModel[]; providers: Record<string, ProviderHealth> }>('/api/admin/models', options),
  update: async (modelId: string, changes: { enabled?: boolean; display_name?: string | null }) =>
    (await api.patch<{ model: { id: string; provider: string; enabled: boolean; display_name: string | null } }>(
      `/api/admin/models/${modelPath(modelId)}`,
      changes,
    )).model,
  remove: (modelId: string) => api.delete<{ ok: true }>(`/api/admin/models/${modelPath(modelId)}`),
  pull: (name: string, provider = 'ollama', options?: RequestOptions) =>
    requestStream('POST', '/api/admin/models/pull', { name, provider }, options),
  providers: async (options?: RequestOptions) =>
    (await api.get<{ providers: Record<string, AdminProviderHealth> }>('/api/admin/providers', options)).providers,
};

export const usageApi = {
  get: (params: { from?: string; to?: string; all?: boolean; userId?: string }, options?: RequestOptions) => {
    const query = new URLSearchParams();
    if (params.from) query.set('from', params.from);
    if (params.to) query.set('to', params.to);
    if (params.all) query.set('all', 'true');
    if (params.userId) query.set('user_id', params.userId);
    return api.get<UsageReport>(`/api/usage?${query}`, options);
  },
};
