// Code highlighting, loaded on demand (a separate chunk, outside the initial bundle): the core
// of highlight.js with the languages models write most. Output is <span class="hljs-…">, styled
// by app.css; no inline styles.
import hljs from 'highlight.js/lib/core';
import bash from 'highlight.js/lib/languages/bash';
import c from 'highlight.js/lib/languages/c';
import cpp from 'highlight.js/lib/languages/cpp';
import css from 'highlight.js/lib/languages/css';
import diff from 'highlight.js/lib/languages/diff';
import go from 'highlight.js/lib/languages/go';
import java from 'highlight.js/lib/languages/java';
import javascript from 'highlight.js/lib/languages/javascript';
import json from 'highlight.js/lib/languages/json';
import python from 'highlight.js/lib/languages/python';
import rust from 'highlight.js/lib/languages/rust';
import sql from 'highlight.js/lib/languages/sql';
import typescript from 'highlight.js/lib/languages/typescript';
import xml from 'highlight.js/lib/languages/xml';
import yaml from 'highlight.js/lib/languages/yaml';

const languages = { bash, c, cpp, css, diff, go, java, javascript, json, python, rust, sql, typescript, xml, yaml };
for (const [name, language] of Object.entries(languages)) hljs.registerLanguage(name, language);
hljs.registerAliases(['sh', 'shell', 'zsh', 'console'], { languageName: 'bash' });
hljs.registerAliases(['html', 'svg'], { languageName: 'xml' });
hljs.configure({ ignoreUnescapedHTML: true });

/** Highlight every `<code class="language-x">` under `root` whose language is known. */
export function highlightAll(root: Element): void {
  for (const code of root.querySelectorAll<HTMLElement>('pre > code[class*="language-"]')) {
    if (code.dataset.highlighted) continue;
    const lang = /language-([\w+-]+)/.exec(code.className)?.[1];
    if (!lang || !hljs.getLanguage(lang)) continue;
    // highlightElement escapes the text it reads (textContent) before wrapping tokens.
    hljs.highlightElement(code);
  }
}
