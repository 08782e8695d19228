import { describe, expect, it } from 'vitest';
import { ApiError, ErrorCode } from './api';
import { describeError } from './errors';
import { endOfLocalDay, formatDateTime, formatDuration, parseList } from './format';
import { keyStatus } from './keys';

describe('formatDuration', () => {
  it.each([
    [0, '0 seconds'],
    [1, '1 second'],
    [45, '45 seconds'],
    [59.2, '1 minute'],
    [60, '1 minute'],
    [125, '2 minutes 5 seconds'],
    [3600, '1 hour'],
    [3720, '1 hour 2 minutes'],
    [-3, '0 seconds'],
  ])('%s → %s', (seconds, text) => {
    expect(formatDuration(seconds)).toBe(text);
  });
});

describe('formatDateTime', () => {
  it('formats in the given locale and zone, with a word for null', () => {
    expect(formatDateTime('2030-01-02T03:04:00+00:00', { locale: 'en-US', timeZone: 'UTC' })).toBe(
      'Jan 2, 2030, 3:04 AM',
    );
    expect(formatDateTime(null)).toBe('never');
    expect(formatDateTime(null, { never: '—' })).toBe('—');
    expect(formatDateTime('garbage')).toBe('garbage');
  });
});

describe('endOfLocalDay', () => {
  it('is the last millisecond of that local day', () => {
    const iso = endOfLocalDay('2030-03-15');
    expect(iso).not.toBeNull();
    const d = new Date(iso!);
    expect([d.getFullYear(), d.getMonth(), d.getDate(), d.getHours(), d.getMinutes()]).toEqual([
      2030, 2, 15, 23, 59,
    ]);
  });

  it('rejects malformed and impossible dates', () => {
    expect(endOfLocalDay('')).toBeNull();
    expect(endOfLocalDay('15/03/2030')).toBeNull();
    expect(endOfLocalDay('2030-02-30')).toBeNull();
  });
});

describe('parseList', () => {
  it('splits on commas and newlines, trims, drops blanks and duplicates', () => {
    expect(parseList(' a, b ,,\nc, a ')).toEqual(['a', 'b', 'c']);
    expect(parseList('   ')).toEqual([]);
  });
});

describe('keyStatus', () => {
  const now = Date.parse('2030-06-01T00:00:00Z');
  it('revoked beats expired beats active', () => {
    expect(keyStatus({ revoked_at: null, expires_at: null }, now)).toBe('active');
    expect(keyStatus({ revoked_at: null, expires_at: '2030-07-01T00:00:00Z' }, now)).toBe('active');
    expect(keyStatus({ revoked_at: null, expires_at: '2030-05-01T00:00:00Z' }, now)).toBe(
      'expired',
    );
    expect(
      keyStatus({ revoked_at: '2030-05-02T00:00:00Z', expires_at: '2030-05-01T00:00:00Z' }, now),
    ).toBe('revoked');
  });
});

describe('describeError', () => {
  it('chooses text by code, never by message', () => {
    const err = new ApiError(401, 'invalid_credentials', 'account_pending');
    expect(describeError(err)).toBe('Wrong email or password.');
  });

  it('lets a screen reword a code', () => {
    const err = new ApiError(403, 'invalid_credentials', 'current password is wrong');
    expect(describeError(err, { invalid_credentials: 'Your current password is wrong.' })).toBe(
      'Your current password is wrong.',
    );
  });

  it('says how long to wait when throttled', () => {
    expect(describeError(new ApiError(429, 'login_throttled', 'x', { retryAfter: 90 }))).toBe(
      'Too many attempts. Try again in 1 minute 30 seconds.',
    );
    expect(describeError(new ApiError(429, 'rate_limit_requests', 'x'))).toBe(
      'Too many attempts. Try again in a little while.',
    );
  });

  it('shows the server message for codes it has nothing better for, but not for 5xx', () => {
    expect(
      describeError(new ApiError(400, 'validation_error', 'email: not a valid email address')),
    ).toBe('email: not a valid email address');
    expect(describeError(new ApiError(502, 'http_502', '502 Bad Gateway'))).toBe(
      'The server failed (502). Try again later.',
    );
    expect(describeError(new ApiError(0, ErrorCode.Network, 'Failed to fetch'))).toMatch(
      /reach the server/,
    );
  });

  it('handles non-API errors', () => {
    expect(describeError(new Error('plain'))).toBe('plain');
    expect(describeError('text')).toBe('text');
  });
});
