import { describe, expect, it } from 'vitest';
import type { UsageRow } from './chat/contract';
import { formatBytes, usageByModel, usageByUser, utcDay } from './usage';

const row = (extra: Partial<UsageRow>): UsageRow => ({
  day: '2030-01-01', provider: 'ollama', model: 'ollama/a', user_id: 'u1', email: 'a@x', requests: 1, failed: 0,
  input_tokens: 10, output_tokens: 5, cached_tokens: 0, exact: true, ...extra,
});

describe('usage summaries', () => {
  const rows = [
    row({}),
    row({ day: '2030-01-02', output_tokens: 20 }),
    row({ user_id: 'u2', email: 'b@x', model: 'ollama/b', exact: false }),
    row({ user_id: null, email: null }),
  ];

  it('totals per user, most tokens first', () => {
    expect(usageByUser(rows).map((s) => [s.label, s.requests, s.input_tokens + s.output_tokens, s.exact])).toEqual([
      ['a@x', 2, 45, true],
      ['b@x', 1, 15, false],
      ['deleted users', 1, 15, true],
    ]);
  });

  it('totals per model', () => {
    expect(usageByModel(rows).map((s) => [s.label, s.requests])).toEqual([
      ['ollama/a', 3],
      ['ollama/b', 1],
    ]);
  });

  it('formats', () => {
    expect(utcDay(new Date('2030-03-04T23:59:00Z'))).toBe('2030-03-04');
    expect(formatBytes(1_321_098_329)).toBe('1.3 GB');
    expect(formatBytes(null)).toBe('—');
  });
});
