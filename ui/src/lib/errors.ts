// User-facing text for failures, chosen by ApiError.code (never by matching message text).
// Codes the UI has nothing better to say about show the server's message, which is written
// for people.
import { ApiError, ErrorCode } from './api';
import { formatDuration } from './format';

const MESSAGES: Record<string, string> = {
  [ErrorCode.Network]: 'Can’t reach the server. Check your connection and try again.',
  [ErrorCode.InvalidResponse]: 'The server sent an unexpected response. Try again.',
  invalid_credentials: 'Wrong email or password.',
  account_pending: 'Your account is waiting for an admin’s approval.',
  account_disabled: 'This account is disabled. Ask an admin to enable it.',
  signup_closed: 'Sign-up is closed. Ask an admin for an account.',
  email_taken: 'An account with this email already exists. Sign in instead.',
  csrf_failed: 'Your session’s security token is out of date. Reload the page and try again.',
  admin_required: 'Only admins can do that.',
  unauthorized: 'You are signed out. Sign in again.',
  last_admin: 'That would leave llmhub without an admin. Make someone else an admin first.',
  user_not_found: 'That user no longer exists.',
  api_key_not_found: 'That API key no longer exists.',
  payload_too_large: 'That request is too large.',
  internal_error: 'Something went wrong on the server. Try again later.',
};

/** Per-screen wording for specific codes, over the defaults above. */
export type ErrorWording = Partial<Record<string, string>>;

export function describeError(err: unknown, wording: ErrorWording = {}): string {
  if (err instanceof ApiError) {
    if (err.code === 'login_throttled' || err.status === 429) {
      const wait = err.retryAfter === null ? 'a little while' : formatDuration(err.retryAfter);
      return wording[err.code] ?? `Too many attempts. Try again in ${wait}.`;
    }
    const text = wording[err.code] ?? MESSAGES[err.code];
    if (text) return text;
    if (err.status >= 500) return `The server failed (${err.status}). Try again later.`;
    return err.message;
  }
  if (err instanceof Error) return err.message;
  return String(err);
}
