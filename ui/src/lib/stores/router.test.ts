import { describe, expect, it } from 'vitest';
import {
  Router,
  hrefFor,
  inAppTarget,
  isServerPath,
  parseRoute,
  type HistoryLike,
  type Route,
} from './router.svelte';

describe('parseRoute', () => {
  it.each<[string, Route]>([
    ['/', { name: 'chat', chatId: null }],
    ['/c/abc-123', { name: 'chat', chatId: 'abc-123' }],
    ['/c/a%2Fb', { name: 'chat', chatId: 'a/b' }],
    ['/settings', { name: 'settings' }],
    ['/settings/', { name: 'settings' }],
    ['/signin', { name: 'signin' }],
    ['/signup', { name: 'signup' }],
    ['/admin', { name: 'admin', section: 'users' }],
    ['/admin/users', { name: 'admin', section: 'users' }],
    ['/admin/health', { name: 'admin', section: 'health' }],
    ['/admin/models', { name: 'admin', section: 'models' }],
  ])('%s', (path, route) => {
    expect(parseRoute(path)).toEqual(route);
  });

  it.each(['/nope', '/c', '/c/', '/admin/nope', '/settings/x', '/c/a/b', '/c/%E0%A4%A'])(
    '%s is not found',
    (path) => {
      expect(parseRoute(path)).toEqual({ name: 'not-found', path });
    },
  );

  it('round-trips through hrefFor', () => {
    const routes: Route[] = [
      { name: 'chat', chatId: null },
      { name: 'chat', chatId: 'x y/z' },
      { name: 'settings' },
      { name: 'admin', section: 'limits' },
      { name: 'signin' },
      { name: 'signup' },
    ];
    for (const route of routes) expect(parseRoute(hrefFor(route))).toEqual(route);
  });
});

function click(overrides: Partial<Parameters<typeof inAppTarget>[0]> = {}) {
  return {
    button: 0,
    defaultPrevented: false,
    metaKey: false,
    ctrlKey: false,
    shiftKey: false,
    altKey: false,
    ...overrides,
  };
}

function anchor(href: string, attrs: Record<string, string> = {}, target = '') {
  const url = new URL(href, 'http://hub.test');
  return {
    target,
    origin: url.origin,
    pathname: url.pathname,
    search: url.search,
    hash: url.hash,
    hasAttribute: (name: string) => name in attrs,
  };
}

describe('inAppTarget', () => {
  const origin = 'http://hub.test';

  it('routes plain same-origin clicks in the app', () => {
    expect(inAppTarget(click(), anchor('/settings?x=1#y'), origin)).toBe('/settings?x=1#y');
  });

  it('leaves modified clicks, new tabs, downloads and opt-outs to the browser', () => {
    expect(inAppTarget(click({ ctrlKey: true }), anchor('/settings'), origin)).toBeNull();
    expect(inAppTarget(click({ metaKey: true }), anchor('/settings'), origin)).toBeNull();
    expect(inAppTarget(click({ button: 1 }), anchor('/settings'), origin)).toBeNull();
    expect(inAppTarget(click({ defaultPrevented: true }), anchor('/settings'), origin)).toBeNull();
    expect(inAppTarget(click(), anchor('/settings', {}, '_blank'), origin)).toBeNull();
    expect(inAppTarget(click(), anchor('/x.txt', { download: '' }), origin)).toBeNull();
    expect(inAppTarget(click(), anchor('#main', { 'data-native': '' }), origin)).toBeNull();
  });

  it('leaves other origins and server paths alone', () => {
    expect(inAppTarget(click(), anchor('https://example.com/settings'), origin)).toBeNull();
    for (const path of [
      '/api/keys',
      '/v1/models',
      '/health',
      '/health/ready',
      '/assets/x.js',
      '/metrics',
    ]) {
      expect(isServerPath(path)).toBe(true);
      expect(inAppTarget(click(), anchor(path), origin)).toBeNull();
    }
    expect(isServerPath('/healthy-chat')).toBe(false);
  });
});

class FakeHistory implements HistoryLike {
  location = { pathname: '/', search: '', hash: '' };
  entries: string[] = [];
  pushState(_d: unknown, _u: string, url: string): void {
    this.entries.push(url);
    this.set(url);
  }
  replaceState(_d: unknown, _u: string, url: string): void {
    this.entries[this.entries.length - 1] = url;
    this.set(url);
  }
  set(url: string): void {
    const u = new URL(url, 'http://hub.test');
    this.location = { pathname: u.pathname, search: u.search, hash: u.hash };
  }
}

describe('Router', () => {
  it('reads the current URL on attach and canonicalises it', () => {
    const history = new FakeHistory();
    history.entries.push('/admin');
    history.set('/admin?tab=1');
    const router = new Router();
    router.attach(history);
    expect(router.path).toBe('/admin/users');
    expect(router.route).toEqual({ name: 'admin', section: 'users' });
    expect(history.entries).toEqual(['/admin/users?tab=1']);
  });

  it('navigate pushes, replace replaces, and the same URL is a no-op', () => {
    const history = new FakeHistory();
    history.entries.push('/');
    const router = new Router();
    router.attach(history);
    router.navigate('/settings');
    router.navigate('/settings');
    router.navigate('/c/42', { replace: true });
    expect(history.entries).toEqual(['/', '/c/42']);
    expect(router.route).toEqual({ name: 'chat', chatId: '42' });
  });

  it('go() builds the URL from a route', () => {
    const history = new FakeHistory();
    history.entries.push('/');
    const router = new Router();
    router.attach(history);
    router.go({ name: 'admin', section: 'health' });
    expect(history.location.pathname).toBe('/admin/health');
  });

  it('sync() follows back/forward', () => {
    const history = new FakeHistory();
    history.entries.push('/');
    const router = new Router();
    router.attach(history);
    history.set('/settings'); // the browser moved
    router.sync();
    expect(router.route).toEqual({ name: 'settings' });
  });

  it('keeps unknown paths as they are', () => {
    const history = new FakeHistory();
    history.entries.push('/');
    const router = new Router();
    router.attach(history);
    router.navigate('/no/such/page');
    expect(router.route).toEqual({ name: 'not-found', path: '/no/such/page' });
  });
});
