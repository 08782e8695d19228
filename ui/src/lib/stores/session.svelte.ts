// Who is signed in. The CSRF token lives in the API client (setCsrfToken), never in this store:
// components can't leak what they can't see.
import { ApiError, setCsrfToken, setUnauthorizedHandler } from '../api';
import { authApi } from '../endpoints';
import type { SessionInfo, User } from '../types';

export type SessionStatus = 'loading' | 'signed-out' | 'signed-in';

/** Why the sign-in screen is showing, when it's not the first visit. */
export type SignedOutReason = 'signed-out' | 'signed-out-everywhere' | 'expired' | null;

export type SignUpOutcome = 'signed-in' | 'pending';

type AuthClient = Pick<
  typeof authApi,
  'me' | 'login' | 'signup' | 'logout' | 'logoutEverywhere' | 'changePassword'
>;

export class Session {
  status = $state<SessionStatus>('loading');
  user = $state<User | null>(null);
  reason = $state<SignedOutReason>(null);
  /** Set when the initial /me check failed for a reason other than 401 (server down). */
  loadError = $state<ApiError | null>(null);

  readonly isAdmin = $derived(this.user?.role === 'admin');

  readonly #client: AuthClient;

  constructor(client: AuthClient = authApi) {
    this.#client = client;
  }

  /** The initial check: signed in (cookie still valid) or not. */
  async load(): Promise<void> {
    this.status = 'loading';
    this.loadError = null;
    try {
      this.#adopt(await this.#client.me());
    } catch (err) {
      if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
        // 403: the account was disabled or is pending; either way, sign in again.
        this.#clear(null);
        return;
      }
      if (err instanceof ApiError) this.loadError = err;
      else throw err;
    }
  }

  async signIn(email: string, password: string): Promise<void> {
    this.#adopt(await this.#client.login({ email, password }));
  }

  async signUp(input: {
    email: string;
    password: string;
    display_name?: string;
  }): Promise<SignUpOutcome> {
    const result = await this.#client.signup(input);
    if ('csrf_token' in result) {
      this.#adopt(result);
      return 'signed-in';
    }
    return 'pending';
  }

  /** Ends this session. Signed out locally even if the server could not be told. */
  async signOut(): Promise<void> {
    try {
      await this.#client.logout();
    } finally {
      this.#clear('signed-out');
    }
  }

  async signOutEverywhere(): Promise<void> {
    await this.#client.logoutEverywhere();
    this.#clear('signed-out-everywhere');
  }

  /** The server keeps this session (with a new CSRF token) and ends every other one. */
  async changePassword(current: string, next: string): Promise<void> {
    this.#adopt(
      await this.#client.changePassword({ current_password: current, new_password: next }),
    );
  }

  /** The server answered 401 to a signed-in request: the session is gone. */
  expire(): void {
    if (this.status === 'signed-in') this.#clear('expired');
  }

  #adopt(info: SessionInfo): void {
    setCsrfToken(info.csrf_token);
    this.user = info.user;
    this.status = 'signed-in';
    this.reason = null;
    this.loadError = null;
  }

  #clear(reason: SignedOutReason): void {
    setCsrfToken(null);
    this.user = null;
    this.status = 'signed-out';
    this.reason = reason;
  }
}

export const session = new Session();
setUnauthorizedHandler(() => session.expire());
