// Read by vite-plugin-svelte and svelte-check.
/** @type {import('@sveltejs/vite-plugin-svelte').SvelteConfig} */
export default {
  vitePlugin: {
    // Force runes mode for our own components only (third-party Svelte libraries may still
    // use legacy syntax, so don't force it on node_modules).
    dynamicCompileOptions({ filename }) {
      if (!filename.includes('/node_modules/')) return { runes: true };
    },
  },
};
