// Typed wrappers for every JSON endpoint the UI calls. All HTTP goes through ./api.ts (one
// place for credentials, CSRF and ApiError mapping); this file only names paths and types.
import { api, type RequestOptions } from './api';
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
