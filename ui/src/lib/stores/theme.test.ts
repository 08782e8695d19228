import { describe, expect, it } from 'vitest';
import { Theme, THEME_STORAGE_KEY, isThemePreference, type ThemeEnvironment } from './theme.svelte';

class FakeStorage {
  data = new Map<string, string>();
  throwOnRead = false;
  throwOnWrite = false;
  getItem(key: string): string | null {
    if (this.throwOnRead) throw new Error('SecurityError');
    return this.data.get(key) ?? null;
  }
  setItem(key: string, value: string): void {
    if (this.throwOnWrite) throw new Error('QuotaExceededError');
    this.data.set(key, value);
  }
}

class FakeRoot {
  attrs = new Map<string, string>();
  setAttribute(name: string, value: string): void {
    this.attrs.set(name, value);
  }
}

class FakeQuery {
  listeners = new Set<(e: { matches: boolean }) => void>();
  constructor(public matches: boolean) {}
  addEventListener(_type: 'change', listener: (e: { matches: boolean }) => void): void {
    this.listeners.add(listener);
  }
  removeEventListener(_type: 'change', listener: (e: { matches: boolean }) => void): void {
    this.listeners.delete(listener);
  }
  flip(matches: boolean): void {
    this.matches = matches;
    for (const l of this.listeners) l({ matches });
  }
}

function setup(
  options: { stored?: string; systemDark?: boolean; storage?: FakeStorage | null } = {},
) {
  const storage = options.storage === undefined ? new FakeStorage() : options.storage;
  if (storage && options.stored !== undefined) storage.data.set(THEME_STORAGE_KEY, options.stored);
  const root = new FakeRoot();
  const query = new FakeQuery(options.systemDark ?? false);
  const env = { storage, root, darkQuery: query } as unknown as ThemeEnvironment;
  return { theme: new Theme(env), storage, root, query };
}

describe('Theme', () => {
  it('defaults to system and applies the system preference to <html> at once', () => {
    const { theme, root } = setup({ systemDark: true });
    expect(theme.preference).toBe('system');
    expect(theme.resolved).toBe('dark');
    expect(root.attrs.get('data-theme')).toBe('dark');
    expect(root.attrs.get('data-theme-preference')).toBe('system');
  });

  it('restores a saved choice', () => {
    const { theme, root } = setup({ stored: 'light', systemDark: true });
    expect(theme.preference).toBe('light');
    expect(root.attrs.get('data-theme')).toBe('light');
  });

  it('ignores junk in storage', () => {
    const { theme } = setup({ stored: 'purple' });
    expect(theme.preference).toBe('system');
  });

  it('set() persists and applies', () => {
    const { theme, storage, root } = setup();
    theme.set('dark');
    expect(storage?.data.get(THEME_STORAGE_KEY)).toBe('dark');
    expect(root.attrs.get('data-theme')).toBe('dark');
    expect(root.attrs.get('data-theme-preference')).toBe('dark');
    expect(theme.resolved).toBe('dark');
  });

  it('follows the system while on "system", and only then', () => {
    const { theme, root, query } = setup({ systemDark: false });
    query.flip(true);
    expect(root.attrs.get('data-theme')).toBe('dark');
    expect(theme.resolved).toBe('dark');

    theme.set('light');
    query.flip(false);
    query.flip(true);
    expect(root.attrs.get('data-theme')).toBe('light');
  });

  it('dispose() stops listening', () => {
    const { theme, query } = setup();
    theme.dispose();
    expect(query.listeners.size).toBe(0);
  });

  it('works when storage is unavailable or throws', () => {
    const { theme, root } = setup({ storage: null, systemDark: true });
    theme.set('light');
    expect(root.attrs.get('data-theme')).toBe('light');

    const broken = new FakeStorage();
    broken.throwOnRead = true;
    broken.throwOnWrite = true;
    const again = setup({ storage: broken });
    expect(again.theme.preference).toBe('system');
    again.theme.set('dark');
    expect(again.root.attrs.get('data-theme')).toBe('dark');
  });

  it('isThemePreference', () => {
    expect(['light', 'dark', 'system'].every(isThemePreference)).toBe(true);
    expect(isThemePreference('auto')).toBe(false);
    expect(isThemePreference(null)).toBe(false);
  });
});
