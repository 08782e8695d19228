import { describe, expect, it } from 'vitest';
import { Layout, SIDEBAR_STORAGE_KEY, type LayoutEnvironment } from './layout.svelte';

class FakeStorage {
  data = new Map<string, string>();
  getItem(key: string): string | null {
    return this.data.get(key) ?? null;
  }
  setItem(key: string, value: string): void {
    this.data.set(key, value);
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

function setup(narrow: boolean, stored?: string) {
  const storage = new FakeStorage();
  if (stored) storage.setItem(SIDEBAR_STORAGE_KEY, stored);
  const query = new FakeQuery(narrow);
  const env = { storage, narrowQuery: query } as unknown as LayoutEnvironment;
  return { layout: new Layout(env), storage, query };
}

describe('Layout', () => {
  it('shows the sidebar on wide screens and remembers collapsing it', () => {
    const { layout, storage } = setup(false);
    expect(layout.sidebarVisible).toBe(true);
    layout.toggleSidebar();
    expect(layout.sidebarVisible).toBe(false);
    expect(storage.getItem(SIDEBAR_STORAGE_KEY)).toBe('collapsed');
    expect(setup(false, 'collapsed').layout.sidebarVisible).toBe(false);
  });

  it('opens the drawer on narrow screens without touching the wide-screen choice', () => {
    const { layout, storage } = setup(true);
    expect(layout.sidebarVisible).toBe(false);
    layout.toggleSidebar();
    expect(layout.drawerOpen).toBe(true);
    expect(layout.sidebarVisible).toBe(true);
    expect(storage.getItem(SIDEBAR_STORAGE_KEY)).toBeNull();
    layout.closeDrawer();
    expect(layout.sidebarVisible).toBe(false);
  });

  it('closes the drawer when the screen becomes wide', () => {
    const { layout, query } = setup(true);
    layout.toggleSidebar();
    query.flip(false);
    expect(layout.narrow).toBe(false);
    expect(layout.drawerOpen).toBe(false);
    expect(layout.sidebarVisible).toBe(true);
    layout.dispose();
    expect(query.listeners.size).toBe(0);
  });
});
