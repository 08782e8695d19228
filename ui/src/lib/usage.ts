// Summaries of GET /api/usage rows (one per day × model × user) for the admin usage screen.
import type { UsageRow } from './chat/contract';

export interface UsageSummary {
  key: string;
  label: string;
  requests: number;
  failed: number;
  input_tokens: number;
  output_tokens: number;
  cached_tokens: number;
  /** False when any row was an estimate (the provider reported no exact counts). */
  exact: boolean;
}

function summarize(rows: readonly UsageRow[], keyOf: (r: UsageRow) => [string, string]): UsageSummary[] {
  const out = new Map<string, UsageSummary>();
  for (const row of rows) {
    const [key, label] = keyOf(row);
    let s = out.get(key);
    if (!s) {
      s = { key, label, requests: 0, failed: 0, input_tokens: 0, output_tokens: 0, cached_tokens: 0, exact: true };
      out.set(key, s);
    }
    s.requests += row.requests;
    s.failed += row.failed;
    s.input_tokens += row.input_tokens;
    s.output_tokens += row.output_tokens;
    s.cached_tokens += row.cached_tokens;
    s.exact &&= row.exact !== false;
  }
  return [...out.values()].sort(
    (a, b) => b.input_tokens + b.output_tokens - (a.input_tokens + a.output_tokens) || a.label.localeCompare(b.label),
  );
}

/** Totals per user, most tokens first. Rows without a user (deleted users) are grouped. */
export function usageByUser(rows: readonly UsageRow[]): UsageSummary[] {
  return summarize(rows, (r) => [r.user_id ?? '', r.email ?? (r.user_id ? r.user_id : 'deleted users')]);
}

/** Totals per model (provider/model), most tokens first. */
export function usageByModel(rows: readonly UsageRow[]): UsageSummary[] {
  return summarize(rows, (r) => [`${r.provider}\u0000${r.model}`, r.model]);
}

/** YYYY-MM-DD of a date in UTC (the usage API's days are UTC days). */
export function utcDay(date: Date): string {
  return date.toISOString().slice(0, 10);
}

export function formatCount(n: number, locale?: string): string {
  return new Intl.NumberFormat(locale).format(n);
}

export function formatBytes(bytes: number | null): string {
  if (bytes === null || !Number.isFinite(bytes)) return '—';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${value.toFixed(value >= 100 || unit === 0 ? 0 : 1)} ${units[unit]}`;
}
