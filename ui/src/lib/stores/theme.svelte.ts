// Light / dark / system, persisted in localStorage and applied as <html data-theme="light|dark">
// (plus data-theme-preference), which app.css keys its colour tokens on. No inline styles.

export type ThemePreference = 'light' | 'dark' | 'system';
export type ResolvedTheme = 'light' | 'dark';

export const THEME_STORAGE_KEY = 'llmhub.theme';
export const THEME_PREFERENCES: readonly ThemePreference[] = ['light', 'dark', 'system'];

/** What the theme store touches, injectable for tests. */
export interface ThemeEnvironment {
  storage: Pick<Storage, 'getItem' | 'setItem'> | null;
  root: Pick<HTMLElement, 'setAttribute'>;
  /** `matchMedia('(prefers-color-scheme: dark)')`, or null where there is none. */
  darkQuery: Pick<MediaQueryList, 'matches' | 'addEventListener' | 'removeEventListener'> | null;
}

export function isThemePreference(value: unknown): value is ThemePreference {
  return THEME_PREFERENCES.includes(value as ThemePreference);
}

export function browserEnvironment(): ThemeEnvironment {
  let storage: Storage | null = null;
  try {
    storage = window.localStorage;
  } catch {
    // Storage disabled (privacy settings): the choice lasts until the page is closed.
  }
  return {
    storage,
    root: document.documentElement,
    darkQuery:
      typeof window.matchMedia === 'function'
        ? window.matchMedia('(prefers-color-scheme: dark)')
        : null,
  };
}

export class Theme {
  preference = $state<ThemePreference>('system');
  systemDark = $state(false);
  readonly resolved: ResolvedTheme = $derived(
    this.preference === 'system' ? (this.systemDark ? 'dark' : 'light') : this.preference,
  );

  readonly #env: ThemeEnvironment;
  readonly #onSystemChange = (event: { matches: boolean }) => {
    this.systemDark = event.matches;
    this.#apply();
  };

  constructor(env: ThemeEnvironment) {
    this.#env = env;
    this.preference = this.#read();
    this.systemDark = env.darkQuery?.matches ?? false;
    env.darkQuery?.addEventListener('change', this.#onSystemChange);
    this.#apply();
  }

  set(preference: ThemePreference): void {
    this.preference = preference;
    try {
      this.#env.storage?.setItem(THEME_STORAGE_KEY, preference);
    } catch {
      // Quota or privacy mode: keep the choice for this page only.
    }
    this.#apply();
  }

  dispose(): void {
    this.#env.darkQuery?.removeEventListener('change', this.#onSystemChange);
  }

  #read(): ThemePreference {
    try {
      const stored = this.#env.storage?.getItem(THEME_STORAGE_KEY);
      return isThemePreference(stored) ? stored : 'system';
    } catch {
      return 'system';
    }
  }

  #apply(): void {
    // Computed here rather than read from `resolved`, so this works outside any reactive context.
    const resolved =
      this.preference === 'system' ? (this.systemDark ? 'dark' : 'light') : this.preference;
    this.#env.root.setAttribute('data-theme', resolved);
    this.#env.root.setAttribute('data-theme-preference', this.preference);
  }
}

let instance: Theme | null = null;

/** The app's theme store, created (and applied to <html>) on first use. */
export function theme(): Theme {
  instance ??= new Theme(browserEnvironment());
  return instance;
}
