// What the user is writing: the composer's text, shared so the empty state's suggestions and
// keyboard shortcuts can fill and focus it.

export class ComposerStore {
  text = $state('');
  #input: HTMLTextAreaElement | null = null;

  /** The textarea registers itself (and unregisters with null). */
  attach(input: HTMLTextAreaElement | null): void {
    this.#input = input;
  }

  focus(): void {
    this.#input?.focus();
  }

  /** Put `text` in the box (a suggestion) and focus it, cursor at the end. */
  fill(text: string): void {
    this.text = text;
    queueMicrotask(() => {
      const input = this.#input;
      if (!input) return;
      input.focus();
      input.setSelectionRange(text.length, text.length);
    });
  }
}

export const composer = new ComposerStore();
