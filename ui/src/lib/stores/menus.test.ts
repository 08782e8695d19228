import { describe, expect, it } from 'vitest';
import { Menus } from './menus.svelte';

describe('Menus', () => {
  it('keeps at most one menu open', () => {
    const menus = new Menus();
    menus.toggle('a');
    expect(menus.open).toBe('a');
    menus.toggle('b');
    expect(menus.open).toBe('b');
    menus.toggle('b');
    expect(menus.open).toBeNull();
  });

  it('closes only the menu named', () => {
    const menus = new Menus();
    menus.toggle('a');
    menus.close('b');
    expect(menus.open).toBe('a');
    menus.close('a');
    expect(menus.open).toBeNull();
    menus.toggle('c');
    menus.close();
    expect(menus.open).toBeNull();
  });
});
