/// <reference types="vitest/config" />
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { defineConfig, loadEnv } from 'vite';

// `npm run build` writes the production build into the committed ../static/ folder, which the
// Python server serves: index.html at /, hashed, immutable files under /assets/.
//
// The server sends a strict CSP (script-src 'self'; style-src 'self'), so the built index.html
// must have no inline <script>, no <style> and no style="" attributes. Vite emits only
// <script type="module" src> and <link rel="stylesheet" href> tags; Svelte component CSS goes
// to the CSS file (vite-plugin-svelte's emitCss, the default). .ci/check-static verifies this.
export default defineConfig(({ mode }) => {
  // LLMHUB_DEV_BACKEND: where `npm run dev` proxies API calls (never exposed to client code:
  // only VITE_-prefixed variables are).
  const env = loadEnv(mode, '.', 'LLMHUB_');
  const backend = env.LLMHUB_DEV_BACKEND || 'http://127.0.0.1:8080';

  return {
    plugins: [svelte()],
    base: '/',
    build: {
      outDir: '../static',
      emptyOutDir: true,
      assetsDir: 'assets',
      // Never inline assets as data: URIs (keeps CSP free of `data:`); every asset is a file.
      assetsInlineLimit: 0,
      // The entry script is `type="module"`; every supported browser has modulepreload.
      modulePreload: { polyfill: false },
      sourcemap: false,
      // Committed output: keep it stable and free of machine-specific data.
      reportCompressedSize: false,
    },
    server: {
      proxy: {
        '^/(api|health|v1|auth|metrics)(/|$)': { target: backend, changeOrigin: false },
      },
    },
    test: {
      include: ['src/**/*.test.ts'],
      environment: 'node',
      restoreMocks: true,
      unstubGlobals: true,
    },
  };
});
