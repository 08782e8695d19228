// Which pop-up menu is open: at most one in the whole app, so opening one closes any other.

export class Menus {
  open = $state<string | null>(null);

  toggle(id: string): void {
    this.open = this.open === id ? null : id;
  }

  /** Close `id` (or whichever is open, without an id). */
  close(id?: string): void {
    if (id === undefined || this.open === id) this.open = null;
  }
}

export const menus = new Menus();
