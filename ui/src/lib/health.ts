import { ApiError, request } from './api';

/** GET /health/ready. The server answers 200 when ready and (typically) 503 when degraded. */
export interface ReadinessReport {
  status: 'ok' | 'degraded';
  database: { ok: boolean; [key: string]: unknown };
  providers: Record<string, { ok: boolean; detail: string | null }>;
}

export function isReadinessReport(value: unknown): value is ReadinessReport {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  const db = v.database as Record<string, unknown> | null | undefined;
  const providers = v.providers as Record<string, unknown> | null | undefined;
  return (
    (v.status === 'ok' || v.status === 'degraded') &&
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
    throw new ApiError(200, 'invalid_response', 'unexpected /health/ready response', {
      body: report,
    });
  } catch (err) {
    if (err instanceof ApiError && isReadinessReport(err.body)) return err.body;
    throw err;
  }
}
