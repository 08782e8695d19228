import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  ApiError,
  ErrorCode,
  api,
  parseRetryAfter,
  request,
  requestStream,
  setCsrfToken,
  setUnauthorizedHandler,
} from './api';
import { fetchReadiness } from './health';
import { readSse } from './sse';

type FetchArgs = [input: string, init: RequestInit];

function json(status: number, body: unknown, contentType = 'application/json'): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': contentType } });
}

let fetchMock: ReturnType<typeof vi.fn<(...args: FetchArgs) => Promise<Response>>>;

beforeEach(() => {
  fetchMock = vi.fn<(...args: FetchArgs) => Promise<Response>>();
  vi.stubGlobal('fetch', fetchMock);
});

afterEach(() => {
  setCsrfToken(null);
  setUnauthorizedHandler(null);
});

function lastCall(): { url: string; init: RequestInit; headers: Headers } {
  const call = fetchMock.mock.calls.at(-1);
  if (!call) throw new Error('fetch was not called');
  const [url, init] = call;
  return { url, init, headers: new Headers(init.headers) };
}

/** The rejection of `promise`, asserted to be an ApiError. */
async function apiError(promise: Promise<unknown>): Promise<ApiError> {
  const err = await promise.then(
    () => {
      throw new Error('expected the request to fail');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApiError);
  return err as ApiError;
}

describe('request', () => {
  it('sends JSON with same-origin credentials and parses the JSON reply', async () => {
    fetchMock.mockResolvedValue(json(201, { id: 'c1', title: 'Hi' }));
    const out = await request<{ id: string; title: string }>('POST', '/api/conversations', {
      title: 'Hi',
    });
    expect(out).toEqual({ id: 'c1', title: 'Hi' });

    const { url, init, headers } = lastCall();
    expect(url).toBe('/api/conversations');
    expect(init.method).toBe('POST');
    expect(init.credentials).toBe('same-origin');
    expect(init.body).toBe('{"title":"Hi"}');
    expect(headers.get('content-type')).toBe('application/json');
    expect(headers.get('accept')).toBe('application/json');
    expect(headers.has('x-csrf-token')).toBe(false);
  });

  it('sends no body or Content-Type for a bodyless GET', async () => {
    fetchMock.mockResolvedValue(json(200, []));
    await api.get('/api/models');
    const { init, headers } = lastCall();
    expect(init.method).toBe('GET');
    expect(init.body).toBeUndefined();
    expect(headers.has('content-type')).toBe(false);
  });

  it('sends X-CSRF-Token once set, and stops after it is cleared', async () => {
    fetchMock.mockImplementation(async () => json(200, { ok: true }));
    setCsrfToken('tok-123');
    await api.delete('/api/conversations/c1');
    expect(lastCall().headers.get('x-csrf-token')).toBe('tok-123');

    setCsrfToken(null);
    await api.post('/api/conversations', {}, { headers: { 'X-CSRF-Token': 'forged' } });
    expect(lastCall().headers.has('x-csrf-token')).toBe(false);
  });

  it('resolves undefined for 204 No Content', async () => {
    fetchMock.mockResolvedValue(new Response(null, { status: 204 }));
    await expect(api.delete('/api/conversations/c1')).resolves.toBeUndefined();
  });

  it('rejects non-same-origin paths without calling fetch', async () => {
    await expect(request('GET', 'https://evil.example/x')).rejects.toThrow(TypeError);
    await expect(request('GET', '//evil.example/x')).rejects.toThrow(TypeError);
    expect(fetchMock).not.toHaveBeenCalled();
  });
});

describe('ApiError mapping', () => {
  it('maps the error envelope to status, code, type and message', async () => {
    fetchMock.mockResolvedValue(
      json(409, {
        error: {
          message: 'Conversation was changed elsewhere',
          type: 'conflict',
          code: 'stale_revision',
        },
      }),
    );
    const err = await apiError(api.patch('/api/conversations/c1', { title: 'x' }));
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe('ApiError');
    expect(err.status).toBe(409);
    expect(err.code).toBe('stale_revision');
    expect(err.type).toBe('conflict');
    expect(err.message).toBe('Conversation was changed elsewhere');
  });

  it('falls back to the error type when code is null', async () => {
    fetchMock.mockResolvedValue(
      json(401, { error: { message: 'Not signed in', type: 'authentication_error', code: null } }),
    );
    const err = await apiError(api.get('/api/me'));
    expect(err.status).toBe(401);
    expect(err.code).toBe('authentication_error');
    expect(err.message).toBe('Not signed in');
  });

  it('accepts JSON content types with parameters and +json suffixes', async () => {
    fetchMock.mockResolvedValue(
      json(
        429,
        { error: { message: 'Slow down', type: 'rate_limit', code: 'rate_limited' } },
        'application/problem+json; charset=utf-8',
      ),
    );
    const err = await apiError(api.get('/api/models'));
    expect(err.code).toBe('rate_limited');
  });

  it('never reads error details out of non-envelope bodies', async () => {
    // A JSON body without the envelope (its "message" must not leak into the error) ...
    fetchMock.mockResolvedValueOnce(json(500, { message: 'stale_revision', detail: 'boom' }));
    let err = await apiError(api.get('/api/x'));
    expect(err.status).toBe(500);
    expect(err.code).toBe('http_500');
    expect(err.message).not.toContain('stale_revision');
    expect(err.body).toEqual({ message: 'stale_revision', detail: 'boom' });

    // ... an HTML page from a proxy ...
    fetchMock.mockResolvedValueOnce(
      new Response('<h1>{"error": {"message": "x"}}</h1>', {
        status: 502,
        statusText: 'Bad Gateway',
        headers: { 'content-type': 'text/html' },
      }),
    );
    err = await apiError(api.get('/api/x'));
    expect(err).toMatchObject({ status: 502, code: 'http_502', message: '502 Bad Gateway' });

    // ... and a JSON content type with an unparseable body.
    fetchMock.mockResolvedValueOnce(
      new Response('{not json', { status: 503, headers: { 'content-type': 'application/json' } }),
    );
    err = await apiError(api.get('/api/x'));
    expect(err).toMatchObject({ status: 503, code: 'http_503' });
  });

  it('maps network failures to status 0 / network_error', async () => {
    fetchMock.mockRejectedValue(new TypeError('Failed to fetch'));
    const err = await apiError(api.get('/api/models'));
    expect(err).toMatchObject({ status: 0, code: ErrorCode.Network, message: 'Failed to fetch' });
    expect(err.cause).toBeInstanceOf(TypeError);
  });

  it('maps a 2xx with invalid JSON to invalid_response', async () => {
    fetchMock.mockResolvedValue(new Response('<html>', { status: 200 }));
    const err = await apiError(api.get('/api/models'));
    expect(err).toMatchObject({ status: 200, code: ErrorCode.InvalidResponse });
  });

  it('rethrows aborts as AbortError, not ApiError', async () => {
    const controller = new AbortController();
    fetchMock.mockImplementation(
      (_url, init) =>
        new Promise((_resolve, reject) => {
          init.signal?.addEventListener('abort', () => reject(init.signal?.reason));
        }),
    );
    const pending = api.get('/api/models', { signal: controller.signal });
    controller.abort();
    const err = await pending.catch((e: unknown) => e);
    expect(err).not.toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ name: 'AbortError' });
  });
});

describe('requestStream', () => {
  it('returns the streaming response for readSse, with the same headers', async () => {
    setCsrfToken('tok');
    fetchMock.mockResolvedValue(
      new Response('event: delta\ndata: {"t":"hi"}\n\n', {
        headers: { 'content-type': 'text/event-stream' },
      }),
    );
    const res = await requestStream('POST', '/api/chat', { messages: [] });
    const { headers, init } = lastCall();
    expect(headers.get('accept')).toBe('text/event-stream');
    expect(headers.get('x-csrf-token')).toBe('tok');
    expect(init.credentials).toBe('same-origin');
    const events = [];
    for await (const e of readSse(res.body!)) events.push(e);
    expect(events).toEqual([{ event: 'delta', data: '{"t":"hi"}', id: '' }]);
  });

  it('maps errors before any streaming starts', async () => {
    fetchMock.mockResolvedValue(
      json(400, {
        error: { message: 'Unknown model', type: 'invalid_request_error', code: 'model_not_found' },
      }),
    );
    const err = await apiError(requestStream('POST', '/api/chat', {}));
    expect(err).toMatchObject({ status: 400, code: 'model_not_found', message: 'Unknown model' });
  });
});

describe('Retry-After', () => {
  it('parses delta-seconds and HTTP dates, and ignores junk', () => {
    const now = Date.parse('2030-01-01T00:00:00Z');
    expect(parseRetryAfter(null, now)).toBeNull();
    expect(parseRetryAfter(' 42 ', now)).toBe(42);
    expect(parseRetryAfter('Tue, 01 Jan 2030 00:01:30 GMT', now)).toBe(90);
    expect(parseRetryAfter('Mon, 31 Dec 2029 00:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeNull();
    expect(parseRetryAfter('-5', now)).toBeNull();
  });

  it('is carried on the ApiError of a 429', async () => {
    fetchMock.mockResolvedValue(
      new Response(
        JSON.stringify({
          error: { message: 'slow down', type: 'rate_limit_error', code: 'login_throttled' },
        }),
        { status: 429, headers: { 'content-type': 'application/json', 'retry-after': '17' } },
      ),
    );
    const err = await apiError(api.post('/api/auth/login', {}));
    expect(err).toMatchObject({ status: 429, code: 'login_throttled', retryAfter: 17 });
  });

  it('is null when the header is absent', async () => {
    fetchMock.mockResolvedValue(json(429, { error: { message: 'x', type: 't', code: 'c' } }));
    expect((await apiError(api.get('/api/x'))).retryAfter).toBeNull();
  });
});

describe('unauthorized handler', () => {
  const unauthorized = () =>
    json(401, {
      error: { message: 'sign in', type: 'authentication_error', code: 'unauthorized' },
    });

  it('fires on a 401 while a CSRF token is held', async () => {
    const handler = vi.fn();
    setUnauthorizedHandler(handler);
    setCsrfToken('tok');
    fetchMock.mockResolvedValue(unauthorized());
    const err = await apiError(api.get('/api/keys'));
    expect(handler).toHaveBeenCalledExactlyOnceWith(err);
  });

  it('does not fire when signed out (e.g. a failed sign-in) or for other statuses', async () => {
    const handler = vi.fn();
    setUnauthorizedHandler(handler);
    fetchMock.mockResolvedValueOnce(unauthorized());
    await apiError(api.post('/api/auth/login', {}));
    setCsrfToken('tok');
    fetchMock.mockResolvedValueOnce(
      json(403, { error: { message: 'no', type: 't', code: 'admin_required' } }),
    );
    await apiError(api.get('/api/admin/users'));
    expect(handler).not.toHaveBeenCalled();
  });

  it('ignores a late 401 for a token that has since been replaced', async () => {
    const handler = vi.fn();
    setUnauthorizedHandler(handler);
    setCsrfToken('old');
    let answer: (r: Response) => void = () => undefined;
    fetchMock.mockReturnValueOnce(new Promise<Response>((resolve) => (answer = resolve)));
    const pending = api.get('/api/keys');
    setCsrfToken('new');
    answer(unauthorized());
    await apiError(pending);
    expect(handler).not.toHaveBeenCalled();
  });
});

describe('fetchReadiness', () => {
  const report = {
    status: 'degraded',
    database: { ok: true, latency_ms: 2 },
    providers: { ollama: { ok: false, detail: 'connection refused' } },
  };

  it('returns the report from a 200', async () => {
    fetchMock.mockResolvedValue(json(200, { ...report, status: 'ok' }));
    await expect(fetchReadiness()).resolves.toMatchObject({ status: 'ok' });
    expect(lastCall().url).toBe('/health/ready');
  });

  it('returns the report carried by a 503', async () => {
    fetchMock.mockResolvedValue(json(503, report));
    await expect(fetchReadiness()).resolves.toEqual(report);
  });

  it('accepts the report the server sends when the database is down', async () => {
    const down = {
      status: 'unavailable',
      mode: 'local',
      database: { ok: false, detail: 'connection refused' },
      providers: {},
    };
    fetchMock.mockResolvedValue(json(503, down));
    await expect(fetchReadiness()).resolves.toEqual(down);
  });

  it('still throws ApiError for a 503 without a report', async () => {
    fetchMock.mockResolvedValue(
      json(503, {
        error: { message: 'Shutting down', type: 'unavailable', code: 'shutting_down' },
      }),
    );
    const err = await apiError(fetchReadiness());
    expect(err.code).toBe('shutting_down');
  });
});
