// The one typed client for llmhub's HTTP API. Every call goes through `send()`, so credentials,
// the CSRF header and error mapping are decided in exactly one place.
//
// Error contract: any non-2xx response whose JSON body is
//   {"error": {"message": str, "type": str, "code": str | null}}
// becomes an ApiError carrying those fields. Callers branch on `status` / `code`, never on
// message text. Responses that are not in that shape (a proxy's HTML 502, a network failure,
// invalid JSON) still become ApiError, with a synthetic code.

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** The server's error envelope. */
export interface ErrorBody {
  error: {
    message: string;
    type: string;
    code: string | null;
  };
}

/** Synthetic codes for failures that did not come with the server's error envelope. */
export const ErrorCode = {
  /** fetch() itself failed: offline, DNS, connection refused, CORS. status is 0. */
  Network: 'network_error',
  /** A 2xx response whose body was not the JSON we expected. */
  InvalidResponse: 'invalid_response',
} as const;

export class ApiError extends Error {
  override readonly name = 'ApiError';
  /** HTTP status; 0 when no response was received. */
  readonly status: number;
  /** The server's `error.code`, else its `error.type`, else `http_<status>` or an ErrorCode. */
  readonly code: string;
  /** The server's `error.type`, when it sent one. */
  readonly type: string | null;
  /** The parsed JSON body, when there was one (e.g. a 503 readiness report). */
  readonly body: unknown;
  /** Seconds from the Retry-After header (429/503), when the server sent one. */
  readonly retryAfter: number | null;

  constructor(
    status: number,
    code: string,
    message: string,
    options: {
      type?: string | null;
      body?: unknown;
      cause?: unknown;
      retryAfter?: number | null;
    } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.status = status;
    this.code = code;
    this.type = options.type ?? null;
    this.body = options.body;
    this.retryAfter = options.retryAfter ?? null;
  }
}

/**
 * Retry-After as whole seconds from `now`: delta-seconds or an HTTP date; null when absent or
 * unparseable.
 */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | null {
  if (value === null) return null;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text);
  // An HTTP date names its day and month ("Wed, 21 Oct 2015 07:28:00 GMT"); V8's Date.parse
  // would otherwise read "-5" as a year.
  if (!/[a-z]{3}/i.test(text)) return null;
  const date = Date.parse(text);
  if (Number.isNaN(date)) return null;
  return Math.max(0, Math.ceil((date - now) / 1000));
}

export function isErrorBody(value: unknown): value is ErrorBody {
  if (typeof value !== 'object' || value === null) return false;
  const error = (value as { error?: unknown }).error;
  if (typeof error !== 'object' || error === null) return false;
  const e = error as Record<string, unknown>;
  return (
    typeof e.message === 'string' &&
    (e.type === undefined || typeof e.type === 'string') &&
    (e.code === undefined || e.code === null || typeof e.code === 'string')
  );
}

// --- CSRF -----------------------------------------------------------------------------------

let csrfToken: string | null = null;

/** Set (or clear, with null) the token sent as X-CSRF-Token on every request. */
export function setCsrfToken(token: string | null): void {
  csrfToken = token;
}

export function getCsrfToken(): string | null {
  return csrfToken;
}

// --- session expiry -------------------------------------------------------------------------

let onUnauthorized: ((error: ApiError) => void) | null = null;

/**
 * Called with the ApiError whenever a request made while holding a CSRF token (that is, while
 * the UI believes it is signed in) is answered 401: the session ended elsewhere (sign-out
 * everywhere, an admin's change, expiry). The session store uses it to show sign-in again.
 */
export function setUnauthorizedHandler(handler: ((error: ApiError) => void) | null): void {
  onUnauthorized = handler;
}

// --- requests -------------------------------------------------------------------------------

export interface RequestOptions {
  signal?: AbortSignal;
  /** Extra headers. Accept, X-CSRF-Token and (with a body) Content-Type are always ours. */
  headers?: Record<string, string>;
}

function isJson(response: Response): boolean {
  const type = response.headers.get('content-type') ?? '';
  return /^application\/([\w.+-]+\+)?json\b/i.test(type);
}

async function readJson(response: Response): Promise<{ ok: true; value: unknown } | { ok: false }> {
  try {
    return { ok: true, value: JSON.parse(await response.text()) as unknown };
  } catch {
    return { ok: false };
  }
}

/** Build the ApiError for a non-2xx response. Consumes the body. */
async function errorFromResponse(response: Response): Promise<ApiError> {
  const fallbackCode = `http_${response.status}`;
  const fallbackMessage = `${response.status} ${response.statusText}`.trim();
  const retryAfter = parseRetryAfter(response.headers.get('retry-after'));
  if (!isJson(response)) {
    await response.body?.cancel().catch(() => undefined);
    return new ApiError(response.status, fallbackCode, fallbackMessage, { retryAfter });
  }
  const parsed = await readJson(response);
  if (!parsed.ok) {
    return new ApiError(response.status, fallbackCode, fallbackMessage, { retryAfter });
  }
  const body = parsed.value;
  if (isErrorBody(body)) {
    const { message, type, code } = body.error;
    return new ApiError(response.status, code ?? type ?? fallbackCode, message, {
      type: type ?? null,
      body,
      retryAfter,
    });
  }
  return new ApiError(response.status, fallbackCode, fallbackMessage, { body, retryAfter });
}

/**
 * Send a request and return the raw 2xx Response (body unread). Non-2xx responses and network
 * failures throw ApiError; an abort rethrows the signal's AbortError unchanged.
 */
async function send(
  method: HttpMethod,
  path: string,
  body: unknown,
  accept: string,
  options: RequestOptions,
): Promise<Response> {
  if (!path.startsWith('/') || path.startsWith('//')) {
    throw new TypeError(`API paths are same-origin absolute paths, got ${JSON.stringify(path)}`);
  }
  const headers = new Headers(options.headers);
  headers.set('Accept', accept);
  if (body !== undefined) headers.set('Content-Type', 'application/json');
  const sentToken = csrfToken;
  if (sentToken !== null) headers.set('X-CSRF-Token', sentToken);
  else headers.delete('X-CSRF-Token');

  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
      signal: options.signal,
    });
  } catch (err) {
    if (options.signal?.aborted) throw options.signal.reason ?? err;
    const message = err instanceof Error ? err.message : String(err);
    throw new ApiError(0, ErrorCode.Network, message || 'network error', { cause: err });
  }
  if (!response.ok) {
    const error = await errorFromResponse(response);
    // Only when the token sent is still current: a late 401 from before a fresh sign-in must
    // not sign the new session out.
    if (error.status === 401 && sentToken !== null && sentToken === csrfToken) {
      onUnauthorized?.(error);
    }
    throw error;
  }
  return response;
}

/**
 * JSON request/response. Resolves with the parsed body (undefined for 204/205 or an empty
 * body); any failure is an ApiError.
 */
export async function request<T>(
  method: HttpMethod,
  path: string,
  body?: unknown,
  options: RequestOptions = {},
): Promise<T> {
  const response = await send(method, path, body, 'application/json', options);
  if (response.status === 204 || response.status === 205) return undefined as T;
  const text = await response.text();
  if (text === '') return undefined as T;
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new ApiError(response.status, ErrorCode.InvalidResponse, 'response is not valid JSON', {
      cause: err,
    });
  }
}

/**
 * Streaming request (SSE or NDJSON): same headers and error mapping as `request`, but resolves
 * with the 2xx Response so the caller can hand `response.body` to `readSse`/`readNdjson`.
 */
export async function requestStream(
  method: HttpMethod,
  path: string,
  body?: unknown,
  options: RequestOptions & { accept?: string } = {},
): Promise<Response> {
  const response = await send(method, path, body, options.accept ?? 'text/event-stream', options);
  if (response.body === null) {
    throw new ApiError(response.status, ErrorCode.InvalidResponse, 'response has no body');
  }
  return response;
}

export const api = {
  get: <T>(path: string, options?: RequestOptions) => request<T>('GET', path, undefined, options),
  post: <T>(path: string, body?: unknown, options?: RequestOptions) =>
    request<T>('POST', path, body, options),
  put: <T>(path: string, body?: unknown, options?: RequestOptions) =>
    request<T>('PUT', path, body, options),
  patch: <T>(path: string, body?: unknown, options?: RequestOptions) =>
    request<T>('PATCH', path, body, options),
  delete: <T>(path: string, options?: RequestOptions) =>
    request<T>('DELETE', path, undefined, options),
};
