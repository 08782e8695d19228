import { ApiError, ErrorCode, request } from './api';

export interface ProviderHealth {
  ok: boolean;
  latency_ms: number | null;
  detail: string | null;
}

/** GET /health/ready: 200 when the database is reachable (providers may still be down), 503 when not. */
export interface ReadinessReport {
  status: 'ok' | 'degraded' | 'unavailable';
  mode?: string;
  database: { ok: boolean; detail?: string | null; [key: string]: unknown };
  providers: Record<string, ProviderHealth>;
}

const STATUSES: ReadonlySet<unknown> = new Set(['ok', 'degraded', 'unavailable']);

export function isReadinessReport(value: unknown): value is ReadinessReport {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  const db = v.database as Record<string, unknown> | null | undefined;
  const providers = v.providers as Record<string, unknown> | null | undefined;
  return (
    STATUSES.has(v.status) &&
    typeof db === 'object' &&
    db !== null &&
    typeof db.ok === 'boolean' &&
    typeof providers === 'object' &&
    providers !== null &&
    Object.values(providers).every(
      (p) => typeof p === 'object' && p !== null && typeof (p as { ok?: unknown }).ok === 'boolean',
    )
  );
}

/** The readiness report, whether the server answered 200 or 503 with a report. */
export async function fetchReadiness(signal?: AbortSignal): Promise<ReadinessReport> {
  try {
    const report = await request<unknown>('GET', '/health/ready', undefined, { signal });
    if (isReadinessReport(report)) return report;
    throw new ApiError(200, ErrorCode.InvalidResponse, 'unexpected /health/ready response', {
      body: report,
    });
  } catch (err) {
    if (err instanceof ApiError && isReadinessReport(err.body)) return err.body;
    throw err;
  }
}
