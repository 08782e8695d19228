// Model output → safe HTML. Markdown is parsed by `marked`; raw HTML in the text is shown as
// text, never interpreted (models write HTML in prose and code); the result then goes through
// DOMPurify anyway (defence in depth): no scripts, no event handlers, no `style` attributes
// (the CSP forbids inline styles), no `javascript:` URLs, no images (a model-chosen image URL
// would load from anywhere), and links open in a new tab with rel="noopener noreferrer".
import DOMPurify, { type Config } from 'dompurify';
import { Marked, type Tokens } from 'marked';

export function escapeHtml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

const parser = new Marked({
  gfm: true,
  breaks: true,
  async: false,
  renderer: {
    html(token: Tokens.HTML | Tokens.Tag): string {
      const text = escapeHtml(token.text);
      return 'block' in token && token.block ? `<p>${text}</p>\n` : text;
    },
    image({ href, text }: Tokens.Image): string {
      // Shown as a link to the image, not loaded.
      const label = escapeHtml(text || href);
      return `<a href="${escapeHtml(href)}">${label}</a>`;
    },
  },
});

const FORBID_TAGS = [
  'style', 'script', 'img', 'picture', 'source', 'video', 'audio', 'iframe', 'frame', 'object',
  'embed', 'form', 'input', 'button', 'textarea', 'select', 'option', 'link', 'meta', 'base',
  'svg', 'math', 'template', 'dialog',
];

const MARKDOWN_CONFIG: Config = {
  FORBID_TAGS,
  FORBID_ATTR: ['style', 'srcset', 'action', 'formaction', 'xlink:href'],
  ALLOW_DATA_ATTR: false,
  ALLOW_ARIA_ATTR: false,
};

const SNIPPET_CONFIG: Config = { ALLOWED_TAGS: ['mark'], ALLOWED_ATTR: [] };

let hooked = false;
function purifier(): typeof DOMPurify {
  if (!hooked) {
    hooked = true;
    DOMPurify.addHook('afterSanitizeAttributes', (node) => {
      if (node.tagName === 'A') {
        if (node.hasAttribute('href')) {
          node.setAttribute('target', '_blank');
          node.setAttribute('rel', 'noopener noreferrer');
        } else {
          node.removeAttribute('target');
        }
      }
    });
  }
  return DOMPurify;
}

/** Markdown → sanitised HTML, for `{@html}`. */
export function renderMarkdown(markdown: string): string {
  const html = parser.parse(markdown, { async: false }) as string;
  return purifier().sanitize(html, MARKDOWN_CONFIG) as string;
}

/** A search snippet (server-escaped, <mark> around matches) → HTML with only <mark>. */
export function sanitizeSnippet(html: string): string {
  return purifier().sanitize(html, SNIPPET_CONFIG) as string;
}
