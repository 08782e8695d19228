// @vitest-environment jsdom
import { describe, expect, it } from 'vitest';
import { renderMarkdown, sanitizeSnippet } from './markdown';

function dom(html: string): HTMLElement {
  const div = document.createElement('div');
  div.innerHTML = html;
  return div;
}

describe('renderMarkdown', () => {
  it('renders markdown', () => {
    const root = dom(renderMarkdown('# Title\n\n**bold** and `code`\n\n```python\nprint(1)\n```'));
    expect(root.querySelector('h1')?.textContent).toBe('Title');
    expect(root.querySelector('strong')?.textContent).toBe('bold');
    expect(root.querySelector('pre code.language-python')?.textContent).toBe('print(1)\n');
  });

  it.each([
    '<img src=x onerror=alert(1)>',
    '<script>alert(1)</script>',
    '<svg onload=alert(1)>',
    '<iframe src="javascript:alert(1)"></iframe>',
    '<a href="javascript:alert(1)">x</a>',
    '<p style="color:red" onclick="alert(1)">x</p>',
    '<style>body{display:none}</style>',
    '<form action="/api/auth/logout"><button>go</button></form>',
  ])('shows raw HTML as text: %s', (input) => {
    const html = renderMarkdown(`before ${input} after`);
    const root = dom(html);
    expect(root.querySelector('script, img, svg, iframe, style, form, button, [onerror], [onload], [onclick], [style]')).toBeNull();
    expect(root.textContent).toContain(input.slice(0, 8));
  });

  it('drops javascript: and data: links from markdown', () => {
    for (const href of ['javascript:alert(1)', 'JaVaScRiPt:alert(1)', 'data:text/html,<script>alert(1)</script>']) {
      const root = dom(renderMarkdown(`[click](${href})`));
      const a = root.querySelector('a');
      expect(a?.getAttribute('href') ?? '').not.toMatch(/^(javascript|data):/i);
    }
  });

  it('opens links in a new tab without an opener or referrer', () => {
    const a = dom(renderMarkdown('[site](https://example.com)')).querySelector('a')!;
    expect(a.getAttribute('href')).toBe('https://example.com');
    expect(a.getAttribute('target')).toBe('_blank');
    expect(a.getAttribute('rel')).toBe('noopener noreferrer');
  });

  it('shows markdown images as links, never loads them', () => {
    const root = dom(renderMarkdown('![a cat](https://evil.example/track.png)'));
    expect(root.querySelector('img')).toBeNull();
    expect(root.querySelector('a')?.textContent).toBe('a cat');
  });

  it('escapes code', () => {
    const root = dom(renderMarkdown('```html\n<script>alert(1)</script>\n```'));
    expect(root.querySelector('script')).toBeNull();
    expect(root.querySelector('code')?.textContent).toContain('<script>');
  });
});

describe('sanitizeSnippet', () => {
  it('keeps only <mark>', () => {
    const root = dom(sanitizeSnippet('a <mark>hit</mark> <b>x</b> <img src=x onerror=alert(1)>'));
    expect(root.querySelector('mark')?.textContent).toBe('hit');
    expect(root.querySelector('b, img')).toBeNull();
  });
});
