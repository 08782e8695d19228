// History-API routing. The server answers index.html for any unknown non-API path, so every
// route below is a real URL that survives reload and can be bookmarked.
//
//   /                 chat, no chat open          /settings          settings
//   /c/{chatId}       chat with that chat open    /admin             → /admin/users
//   /signin, /signup  auth screens (signed out)   /admin/{section}   users|models|usage|limits|health

export const ADMIN_SECTIONS = ['users', 'models', 'usage', 'limits', 'health'] as const;
export type AdminSection = (typeof ADMIN_SECTIONS)[number];

export type Route =
  | { name: 'chat'; chatId: string | null }
  | { name: 'settings' }
  | { name: 'admin'; section: AdminSection }
  | { name: 'signin' }
  | { name: 'signup' }
  | { name: 'not-found'; path: string };

/** Top-level path segments the server owns: never routed client-side. */
const SERVER_SEGMENTS = ['api', 'v1', 'health', 'assets', 'metrics'];

function isAdminSection(value: string): value is AdminSection {
  return (ADMIN_SECTIONS as readonly string[]).includes(value);
}

function decodeSegment(segment: string): string | null {
  try {
    return decodeURIComponent(segment);
  } catch {
    return null;
  }
}

export function parseRoute(pathname: string): Route {
  const path = pathname.length > 1 ? pathname.replace(/\/+$/, '') : pathname;
  const parts = path.split('/').slice(1);
  const [first = '', second, ...rest] = parts;
  if (rest.length === 0) {
    if (first === '' && second === undefined) return { name: 'chat', chatId: null };
    if (first === 'c' && second !== undefined && second !== '') {
      const chatId = decodeSegment(second);
      if (chatId) return { name: 'chat', chatId };
    }
    if (second === undefined) {
      if (first === 'settings') return { name: 'settings' };
      if (first === 'signin') return { name: 'signin' };
      if (first === 'signup') return { name: 'signup' };
      if (first === 'admin') return { name: 'admin', section: 'users' };
    }
    if (first === 'admin' && second !== undefined && isAdminSection(second)) {
      return { name: 'admin', section: second };
    }
  }
  return { name: 'not-found', path: pathname };
}

/** The canonical path of a route: `parseRoute(hrefFor(r))` equals `r`. */
export function hrefFor(route: Route): string {
  switch (route.name) {
    case 'chat':
      return route.chatId === null ? '/' : `/c/${encodeURIComponent(route.chatId)}`;
    case 'settings':
      return '/settings';
    case 'admin':
      return `/admin/${route.section}`;
    case 'signin':
      return '/signin';
    case 'signup':
      return '/signup';
    case 'not-found':
      return route.path;
  }
}

export function isServerPath(pathname: string): boolean {
  return SERVER_SEGMENTS.some((s) => pathname === `/${s}` || pathname.startsWith(`/${s}/`));
}

interface ClickLike {
  button: number;
  defaultPrevented: boolean;
  metaKey: boolean;
  ctrlKey: boolean;
  shiftKey: boolean;
  altKey: boolean;
}

interface AnchorLike {
  target: string;
  origin: string;
  pathname: string;
  search: string;
  hash: string;
  hasAttribute(name: string): boolean;
}

/**
 * The in-app URL to navigate to for a click on `anchor`, or null to let the browser handle it
 * (modified clicks, new tabs, downloads, other origins, server-owned paths).
 */
export function inAppTarget(event: ClickLike, anchor: AnchorLike, origin: string): string | null {
  if (event.button !== 0 || event.defaultPrevented) return null;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return null;
  if (anchor.target !== '' && anchor.target !== '_self') return null;
  if (anchor.hasAttribute('download') || anchor.hasAttribute('data-native')) return null;
  if (anchor.origin !== origin || isServerPath(anchor.pathname)) return null;
  return anchor.pathname + anchor.search + anchor.hash;
}

/** The slice of `window.history` / `location` the router needs. */
export interface HistoryLike {
  readonly location: { pathname: string; search: string; hash: string };
  pushState(data: unknown, unused: string, url: string): void;
  replaceState(data: unknown, unused: string, url: string): void;
}

export class Router {
  path = $state('/');
  readonly route: Route = $derived(parseRoute(this.path));

  #history: HistoryLike | null = null;

  /** Read the current URL (and canonicalise it, e.g. /admin → /admin/users). */
  attach(history: HistoryLike): void {
    this.#history = history;
    this.sync();
  }

  /** After popstate: adopt whatever URL the browser now shows. */
  sync(): void {
    if (!this.#history) return;
    const { pathname, search, hash } = this.#history.location;
    const route = parseRoute(pathname);
    const canonical = hrefFor(route);
    if (route.name !== 'not-found' && canonical !== pathname) {
      this.#history.replaceState(null, '', canonical + search + hash);
      this.path = canonical;
    } else {
      this.path = pathname;
    }
  }

  navigate(url: string, options: { replace?: boolean } = {}): void {
    const target = new URL(url, 'http://x');
    const route = parseRoute(target.pathname);
    const pathname = route.name === 'not-found' ? target.pathname : hrefFor(route);
    const full = pathname + target.search + target.hash;
    if (this.#history) {
      const { location } = this.#history;
      const current = location.pathname + location.search + location.hash;
      if (full === current) return;
      if (options.replace) this.#history.replaceState(null, '', full);
      else this.#history.pushState(null, '', full);
    }
    this.path = pathname;
  }

  go(route: Route, options?: { replace?: boolean }): void {
    this.navigate(hrefFor(route), options);
  }
}

export const router = new Router();
