/**
 * Builds the two web pages into dist/web/, which the coordinator serves
 * (coordinator/web/serve.ts):
 *   /       the donate page  (client/web/index.html)
 *   /admin  the admin page   (coordinator/web/admin.html)
 * Scripts, styles and the Web Worker go to dist/web/assets/ with hashed names.
 *
 * `npm run build:web` builds; `npx vite` serves the pages for development
 * (API calls go to a coordinator given by TESSERA_COORDINATOR, default
 * http://127.0.0.1:8080).
 */
import { resolve } from 'node:path';
import { defineConfig, type Plugin } from 'vite';

const root = import.meta.dirname;

/** Source HTML (relative to the repo root) -> the name it gets in dist/web/. */
const PAGES: Record<string, string> = {
  'client/web/index.html': 'index.html',
  'coordinator/web/admin.html': 'admin.html',
};

/** Flattens the pages' output names and maps `/` and `/admin` in the dev server. */
function pagesAtTop(): Plugin {
  return {
    name: 'tessera-pages-at-top',
    enforce: 'post',
    generateBundle(_options, bundle) {
      for (const [key, chunk] of Object.entries(bundle)) {
        const name = PAGES[chunk.fileName];
        if (name && chunk.type === 'asset') {
          delete bundle[key];
          this.emitFile({ type: 'asset', fileName: name, source: chunk.source });
        }
      }
    },
    configureServer(server) {
      server.middlewares.use((req, _res, next) => {
        const path = (req.url ?? '/').split('?')[0];
        if (path === '/' || path === '/index.html') req.url = '/client/web/index.html';
        else if (path === '/admin' || path === '/admin/') req.url = '/coordinator/web/admin.html';
        next();
      });
    },
  };
}

const coordinator = process.env.TESSERA_COORDINATOR ?? 'http://127.0.0.1:8080';

export default defineConfig({
  root,
  base: '/',
  publicDir: false,
  appType: 'mpa',
  plugins: [pagesAtTop()],
  build: {
    outDir: resolve(root, 'dist/web'),
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
    chunkSizeWarningLimit: 1024,
    rollupOptions: {
      input: { donate: resolve(root, 'client/web/index.html'), admin: resolve(root, 'coordinator/web/admin.html') },
    },
  },
  worker: { format: 'es' },
  server: {
    host: '127.0.0.1',
    // cross-origin isolated like the coordinator serves them (coordinator/web/isolation.ts): threads need it
    headers: { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' },
    proxy: { '/api': { target: coordinator, changeOrigin: false } },
  },
});
