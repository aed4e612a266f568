// Builds the dashboard into dist/, which daemon/build.rs embeds in aiprodd. `npm run dev`
// proxies the API to an aiprodd on the default HTTP address.
import { defineConfig } from 'vite';

const daemon = globalThis.process?.env?.AIPROD_HTTP ?? 'http://127.0.0.1:9464';

export default defineConfig({
  // Relative URLs: the page works wherever aiprodd's HTTP port is mounted.
  base: './',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022', sourcemap: false },
  server: {
    proxy: {
      '/api': daemon,
      '/ws': { target: daemon.replace(/^http/, 'ws'), ws: true },
    },
  },
});
