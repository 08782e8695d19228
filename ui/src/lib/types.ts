// Shapes the server sends and accepts (see llmhub/routes/*.py). Timestamps are ISO 8601 strings.

export type Role = 'admin' | 'user' | 'pending';

/** Request and token limits; 0 means unlimited. */
export interface Limits {
  requests_per_minute: number;
  tokens_per_minute: number;
  tokens_per_day: number;
}

export const LIMIT_NAMES = ['requests_per_minute', 'tokens_per_minute', 'tokens_per_day'] as const;
export type LimitName = (typeof LIMIT_NAMES)[number];

export interface User {
  id: string;
  email: string;
  display_name: string;
  role: Role;
  disabled: boolean;
  /** Per-user overrides of the default limits (only the ones set). */
  limits: Partial<Limits>;
  created_at: string;
  last_login_at: string | null;
}

/** A signed-in browser session: the user and the token for X-CSRF-Token. */
export interface SessionInfo {
  user: User;
  csrf_token: string;
}

export type SignupResult = SessionInfo | { user: User; pending: true };

export interface ApiKey {
  id: string;
  name: string;
  /** The first characters of the key, safe to show (the key itself is shown only once). */
  prefix: string;
  allowed_models: string[] | null;
  expires_at: string | null;
  last_used_at: string | null;
  revoked_at: string | null;
  created_at: string;
}

export interface NewApiKey {
  name?: string;
  expires_at?: string;
  allowed_models?: string[];
}

export interface CreatedApiKey {
  /** The full secret: shown once, never retrievable again. */
  key: string;
  api_key: ApiKey;
}

export interface UserUpdate {
  role?: Role;
  disabled?: boolean;
  display_name?: string;
  limits?: Partial<Limits>;
}

export interface ListResponse<T> {
  data: T[];
}
