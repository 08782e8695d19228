// The app shell's layout: the sidebar collapsed or shown on wide screens (remembered), and the
// overlay drawer on narrow ones (never remembered: a phone opens on the conversation).

export const SIDEBAR_STORAGE_KEY = 'llmhub.sidebar';
/** Below this width the sidebar is an overlay drawer (keep in step with app.css). */
export const NARROW_QUERY = '(max-width: 48rem)';

export interface LayoutEnvironment {
  storage: Pick<Storage, 'getItem' | 'setItem'> | null;
  narrowQuery: Pick<MediaQueryList, 'matches' | 'addEventListener' | 'removeEventListener'> | null;
}

export function browserLayoutEnvironment(): LayoutEnvironment {
  let storage: Storage | null = null;
  try {
    storage = window.localStorage;
  } catch {
    // Storage disabled: the choice lasts until the page is closed.
  }
  return {
    storage,
    narrowQuery: typeof window.matchMedia === 'function' ? window.matchMedia(NARROW_QUERY) : null,
  };
}

export class Layout {
  /** Wide screens: the sidebar is hidden by the user. */
  collapsed = $state(false);
  /** Narrow screens: the drawer is open. */
  drawerOpen = $state(false);
  narrow = $state(false);

  /** Whether the sidebar can be seen right now. */
  readonly sidebarVisible = $derived(this.narrow ? this.drawerOpen : !this.collapsed);

  readonly #env: LayoutEnvironment;
  readonly #onNarrow = (event: { matches: boolean }) => {
    this.narrow = event.matches;
    this.drawerOpen = false;
  };

  constructor(env: LayoutEnvironment) {
    this.#env = env;
    this.narrow = env.narrowQuery?.matches ?? false;
    try {
      this.collapsed = env.storage?.getItem(SIDEBAR_STORAGE_KEY) === 'collapsed';
    } catch {
      this.collapsed = false;
    }
    env.narrowQuery?.addEventListener('change', this.#onNarrow);
  }

  /** The header's sidebar button: the drawer on narrow screens, collapse on wide ones. */
  toggleSidebar(): void {
    if (this.narrow) {
      this.drawerOpen = !this.drawerOpen;
      return;
    }
    this.collapsed = !this.collapsed;
    try {
      this.#env.storage?.setItem(SIDEBAR_STORAGE_KEY, this.collapsed ? 'collapsed' : 'shown');
    } catch {
      // Quota or privacy mode: keep the choice for this page only.
    }
  }

  /** After navigating from the drawer (a chat picked, New chat), or Esc. */
  closeDrawer(): void {
    this.drawerOpen = false;
  }

  dispose(): void {
    this.#env.narrowQuery?.removeEventListener('change', this.#onNarrow);
  }
}

let instance: Layout | null = null;

export function layout(): Layout {
  instance ??= new Layout(browserLayoutEnvironment());
  return instance;
}
