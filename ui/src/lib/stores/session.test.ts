import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ApiError, api, getCsrfToken, setCsrfToken } from '../api';
import type { SessionInfo, User } from '../types';
import { Session, session as appSession } from './session.svelte';

type FetchArgs = [input: string, init: RequestInit];

const user: User = {
  id: 'u1',
  email: 'ada@example.com',
  display_name: 'Ada',
  role: 'admin',
  disabled: false,
  limits: {},
  created_at: '2030-01-01T00:00:00+00:00',
  last_login_at: null,
};

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json', ...headers },
  });
}

function error(status: number, code: string, headers: Record<string, string> = {}): Response {
  return json(status, { error: { message: code, type: 't', code } }, headers);
}

const signedIn = (token = 'tok-1', u: User = user): SessionInfo => ({ user: u, csrf_token: token });

let fetchMock: ReturnType<typeof vi.fn<(...args: FetchArgs) => Promise<Response>>>;

beforeEach(() => {
  fetchMock = vi.fn<(...args: FetchArgs) => Promise<Response>>();
  vi.stubGlobal('fetch', fetchMock);
});

afterEach(() => {
  setCsrfToken(null);
});

function calls(): { method: string; url: string; csrf: string | null; body: unknown }[] {
  return fetchMock.mock.calls.map(([url, init]) => ({
    method: init.method ?? 'GET',
    url,
    csrf: new Headers(init.headers).get('x-csrf-token'),
    body: typeof init.body === 'string' ? JSON.parse(init.body) : undefined,
  }));
}

describe('Session.load', () => {
  it('adopts the user and hands the CSRF token to the API client', async () => {
    fetchMock.mockResolvedValue(json(200, signedIn('tok-me')));
    const s = new Session();
    expect(s.status).toBe('loading');
    await s.load();
    expect(s.status).toBe('signed-in');
    expect(s.user).toEqual(user);
    expect(s.isAdmin).toBe(true);
    expect(getCsrfToken()).toBe('tok-me');
    expect(calls()).toEqual([{ method: 'GET', url: '/api/auth/me', csrf: null, body: undefined }]);
  });

  it('is signed out on 401, without a "you were signed out" notice', async () => {
    fetchMock.mockResolvedValue(error(401, 'unauthorized'));
    const s = new Session();
    await s.load();
    expect(s.status).toBe('signed-out');
    expect(s.reason).toBeNull();
    expect(s.user).toBeNull();
    expect(getCsrfToken()).toBeNull();
  });

  it('is signed out when the account is pending or disabled (403)', async () => {
    fetchMock.mockResolvedValue(error(403, 'account_disabled'));
    const s = new Session();
    await s.load();
    expect(s.status).toBe('signed-out');
  });

  it('keeps loading with loadError when the server cannot be reached', async () => {
    fetchMock.mockRejectedValue(new TypeError('Failed to fetch'));
    const s = new Session();
    await s.load();
    expect(s.status).toBe('loading');
    expect(s.loadError).toMatchObject({ status: 0, code: 'network_error' });

    fetchMock.mockResolvedValue(json(200, signedIn()));
    await s.load();
    expect(s.status).toBe('signed-in');
    expect(s.loadError).toBeNull();
  });

  it('a non-admin is not isAdmin', async () => {
    fetchMock.mockResolvedValue(json(200, signedIn('t', { ...user, role: 'user' })));
    const s = new Session();
    await s.load();
    expect(s.isAdmin).toBe(false);
  });
});

describe('sign-in and sign-up', () => {
  it('signIn posts the credentials and adopts the session', async () => {
    fetchMock.mockResolvedValue(json(200, signedIn('tok-login')));
    const s = new Session();
    await s.signIn('ada@example.com', 'pw-123456');
    expect(calls()).toEqual([
      {
        method: 'POST',
        url: '/api/auth/login',
        csrf: null,
        body: { email: 'ada@example.com', password: 'pw-123456' },
      },
    ]);
    expect(s.status).toBe('signed-in');
    expect(getCsrfToken()).toBe('tok-login');
  });

  it('signIn rethrows typed errors and stays signed out', async () => {
    fetchMock.mockResolvedValue(error(429, 'login_throttled', { 'retry-after': '30' }));
    const s = new Session();
    const err = await s.signIn('a@b.co', 'x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ code: 'login_throttled', retryAfter: 30 });
    expect(s.user).toBeNull();
    expect(getCsrfToken()).toBeNull();
  });

  it('signUp signs in on 201', async () => {
    fetchMock.mockResolvedValue(json(201, signedIn('tok-new')));
    const s = new Session();
    await expect(s.signUp({ email: 'a@b.co', password: 'longenough' })).resolves.toBe('signed-in');
    expect(s.status).toBe('signed-in');
    expect(getCsrfToken()).toBe('tok-new');
  });

  it('signUp reports pending approval on 202 and does not sign in', async () => {
    fetchMock.mockResolvedValue(json(202, { user: { ...user, role: 'pending' }, pending: true }));
    const s = new Session();
    await expect(s.signUp({ email: 'a@b.co', password: 'longenough' })).resolves.toBe('pending');
    expect(s.status).toBe('loading');
    expect(s.user).toBeNull();
    expect(getCsrfToken()).toBeNull();
  });
});

describe('signing out', () => {
  async function signedInSession(): Promise<Session> {
    fetchMock.mockResolvedValueOnce(json(200, signedIn('tok-a')));
    const s = new Session();
    await s.load();
    return s;
  }

  it('signOut sends the CSRF token, then clears everything', async () => {
    const s = await signedInSession();
    fetchMock.mockResolvedValueOnce(json(200, { ok: true }));
    await s.signOut();
    expect(calls().at(-1)).toEqual({
      method: 'POST',
      url: '/api/auth/logout',
      csrf: 'tok-a',
      body: undefined,
    });
    expect(s).toMatchObject({ status: 'signed-out', user: null, reason: 'signed-out' });
    expect(getCsrfToken()).toBeNull();
  });

  it('signOut clears locally even when the server cannot be told', async () => {
    const s = await signedInSession();
    fetchMock.mockRejectedValueOnce(new TypeError('offline'));
    await expect(s.signOut()).rejects.toBeInstanceOf(ApiError);
    expect(s.status).toBe('signed-out');
    expect(getCsrfToken()).toBeNull();
  });

  it('signOutEverywhere says so', async () => {
    const s = await signedInSession();
    fetchMock.mockResolvedValueOnce(json(200, { ok: true, sessions_ended: 3 }));
    await s.signOutEverywhere();
    expect(calls().at(-1)?.url).toBe('/api/auth/logout-everywhere');
    expect(s.reason).toBe('signed-out-everywhere');
  });

  it('signOutEverywhere that fails keeps the session', async () => {
    const s = await signedInSession();
    fetchMock.mockResolvedValueOnce(error(500, 'internal_error'));
    await expect(s.signOutEverywhere()).rejects.toBeInstanceOf(ApiError);
    expect(s.status).toBe('signed-in');
    expect(getCsrfToken()).toBe('tok-a');
  });

  it('changePassword adopts the new CSRF token', async () => {
    const s = await signedInSession();
    fetchMock.mockResolvedValueOnce(json(200, signedIn('tok-b')));
    await s.changePassword('old-password', 'new-password');
    expect(calls().at(-1)).toEqual({
      method: 'POST',
      url: '/api/auth/password',
      csrf: 'tok-a',
      body: { current_password: 'old-password', new_password: 'new-password' },
    });
    expect(getCsrfToken()).toBe('tok-b');
    expect(s.status).toBe('signed-in');
  });

  it('expire() only acts on a signed-in session', async () => {
    const s = new Session();
    s.expire();
    expect(s.status).toBe('loading');
    fetchMock.mockResolvedValueOnce(json(200, signedIn()));
    await s.load();
    s.expire();
    expect(s).toMatchObject({ status: 'signed-out', reason: 'expired' });
  });
});

describe('the app session', () => {
  it('expires when any signed-in request is answered 401', async () => {
    fetchMock.mockResolvedValueOnce(json(200, signedIn('tok-app')));
    await appSession.load();
    expect(appSession.status).toBe('signed-in');

    fetchMock.mockResolvedValueOnce(error(401, 'unauthorized'));
    await expect(api.get('/api/keys')).rejects.toBeInstanceOf(ApiError);
    expect(appSession).toMatchObject({ status: 'signed-out', reason: 'expired', user: null });
    expect(getCsrfToken()).toBeNull();
  });
});
