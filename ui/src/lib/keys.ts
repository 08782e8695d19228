import type { ApiKey } from './types';

export type KeyStatus = 'active' | 'revoked' | 'expired';

export function keyStatus(
  key: Pick<ApiKey, 'revoked_at' | 'expires_at'>,
  now: number = Date.now(),
): KeyStatus {
  if (key.revoked_at !== null) return 'revoked';
  if (key.expires_at !== null && Date.parse(key.expires_at) <= now) return 'expired';
  return 'active';
}
