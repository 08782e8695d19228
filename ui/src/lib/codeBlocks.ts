// Copy buttons and (lazily loaded) highlighting for the code blocks of rendered markdown.
// Buttons are made with DOM calls and listeners (no inline handlers: CSP).

let highlighter: Promise<typeof import('./highlight')> | null = null;

function copyButton(pre: HTMLPreElement): HTMLButtonElement {
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'code-copy';
  button.textContent = 'Copy code';
  button.addEventListener('click', () => {
    const text = pre.querySelector('code')?.textContent ?? '';
    navigator.clipboard.writeText(text).then(
      () => (button.textContent = 'Copied'),
      () => (button.textContent = 'Copy failed'),
    );
    setTimeout(() => (button.textContent = 'Copy code'), 2000);
  });
  return button;
}

/** Adds what is missing: a copy button per `<pre>`; highlighting once `final` (not while the
 *  text still streams in, when each delta replaces the DOM). */
export function enhanceCode(root: HTMLElement, final: boolean): void {
  const blocks = root.querySelectorAll('pre');
  if (blocks.length === 0) return;
  for (const pre of blocks) {
    if (!pre.querySelector(':scope > .code-copy')) pre.prepend(copyButton(pre));
  }
  if (!final) return;
  highlighter ??= import('./highlight');
  highlighter.then(
    (module) => {
      if (root.isConnected) module.highlightAll(root);
    },
    () => {
      highlighter = null; // a failed chunk load: plain code is fine, try again next time
    },
  );
}
