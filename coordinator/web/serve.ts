/**
 * Serves the built web pages (dist/web/, from `npm run build:web`) as a Hono
 * sub-app, mounted on the coordinator's app:
 *   GET /        the donate page (index.html)
 *   GET /admin   the admin page (admin.html)
 *   GET /assets/...  scripts, styles, the Web Worker (hashed names: immutable)
 * and the one admin endpoint only the admin page needs,
 *   GET /api/v1/admin/jobs/:id/filters?n=64  the first n filters of rbm0
 * (registered after the app's admin middleware, so it needs the bearer token).
 * Paths under /api are never answered here. A path that leaves dist/web (`..`,
 * encoded separators, NUL, dot files) is 404, like a file that does not
 * exist (resolveWebPath); the files themselves are served by
 * @hono/node-server's serveStatic, with our cache headers.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { serveStatic } from '@hono/node-server/serve-static';
import { Hono } from 'hono';
import { tensorShapes } from '../../core/model/params.ts';
import { decodeWeights, PATHS, SAFETENSORS_TYPE } from '../../core/protocol/index.ts';
import { encodeSafetensors } from '../../core/safetensors.ts';
import { extractFilters } from '../../client/web/filters.ts';
import type { Coordinator } from '../engine/coordinator.ts';
import { crossOriginIsolation } from './isolation.ts';

const REPO_ROOT = resolve(import.meta.dirname, '../..');
/** Where `npm run build:web` writes the pages. */
export const WEB_DIST = join(REPO_ROOT, 'dist/web');

const PAGES: Record<string, string> = { '/': 'index.html', '/index.html': 'index.html', '/admin': 'admin.html', '/admin/': 'admin.html' };

/** The file under `dir` that a URL path names, or null when it names nothing there (or tries to leave). */
export function resolveWebPath(dir: string, urlPath: string): string | null {
  const page = PAGES[urlPath];
  if (page) return join(dir, page);
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return null;
  }
  if (decoded.includes('\0') || decoded.includes('\\')) return null;
  const parts = decoded.split('/').filter((p) => p !== '');
  if (parts.some((p) => p === '..' || p === '.' || p.startsWith('.'))) return null;
  const root = resolve(dir);
  const file = resolve(root, ...parts);
  if (!file.startsWith(root + sep)) return null;
  return file;
}

export interface WebAppOptions {
  /** the built pages (default dist/web/) */
  readonly dir?: string;
}

/** The sub-app: mount with `app.route('/', webApp())` after the API routes. */
export function webApp(opts: WebAppOptions = {}): Hono {
  const dir = resolve(opts.dir ?? WEB_DIST);
  const assets = join(dir, 'assets') + sep;
  // @hono/node-server's serveStatic streams the file with its type; the guard
  // (resolveWebPath) has already refused anything that could leave `dir`.
  const files = serveStatic({ root: dir, rewriteRequestPath: (p) => (PAGES[p] ? `/${PAGES[p]}` : p) });
  const app = new Hono();
  app.use('*', crossOriginIsolation());
  app.get('*', async (c, next) => {
    const path = c.req.path;
    if (path === '/api' || path.startsWith('/api/')) return next();
    if (!existsSync(join(dir, 'index.html'))) {
      return c.html(
        `<!doctype html><title>Tessera</title><h1>The web pages are not built</h1><p>Run <code>npm run build:web</code> in the repository, then reload.</p>`,
        503,
      );
    }
    const file = resolveWebPath(dir, path);
    const res = file && existsSync(file) && statSync(file).isFile() ? await files(c, async () => undefined) : undefined;
    if (!file || !(res instanceof Response)) {
      return c.json({ error: 'not-found', detail: `no page or asset at ${path}; the donate page is at /, the admin page at /admin` }, 404);
    }
    res.headers.set('cache-control', file.startsWith(assets) ? 'public, max-age=31536000, immutable' : 'no-cache');
    res.headers.set('x-content-type-options', 'nosniff');
    return res;
  });
  return app;
}

/**
 * Makes sure dist/web/ is there and current: builds it with Vite (a few
 * seconds) when it is missing or older than the pages' sources, and says how
 * to build it by hand when that fails. Returns whether the pages are there.
 */
export function ensureWebBuilt(log: (line: string) => void = console.log): boolean {
  const built = join(WEB_DIST, 'index.html');
  if (existsSync(built) && existsSync(join(WEB_DIST, 'admin.html'))) {
    const at = statSync(built).mtimeMs;
    if (newestSource() <= at) return true;
    log('the web pages\' sources changed since dist/web/ was built');
  }
  const vite = join(REPO_ROOT, 'node_modules/.bin/vite');
  if (!existsSync(vite)) {
    log('web pages are not built and Vite is not installed: run `npm install && npm run build:web`');
    return false;
  }
  log('building the web pages (dist/web/) with Vite…');
  const r = spawnSync(vite, ['build', '--logLevel', 'warn'], { cwd: REPO_ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) {
    log('building the web pages failed; run `npm run build:web` to see why (the API works without them)');
    return false;
  }
  return true;
}

/**
 * Safetensors with one F32 tensor "filters" [n, V]: column j of rbm0.W for
 * j < n (the first layer's filters, V = input pixels), metadata {version}.
 * About n * 3 KB for MNIST, against 6.7 MB for all the weights.
 */
export function filtersOf(coord: Coordinator, id: string, n: number): Uint8Array {
  const job = coord.summary(id);
  const shapes = tensorShapes(job.config);
  // the active job's live weights directly; another job's from its checkpoint
  const live = coord.publicStatus().job?.id === id ? coord.activeParams() : null;
  const { params, version } = live ? { params: live, version: job.iteration } : decodeWeights(coord.weightsOf(id), shapes);
  const [V, H] = shapes.get('rbm0.W') ?? shapes.get('out.W')!;
  const W = params.get('rbm0.W') ?? params.get('out.W')!;
  const tiles = extractFilters(W, V!, H!, n);
  return encodeSafetensors([['filters', { shape: [tiles.n, V!], data: tiles.data }]], { format: 'tessera-filters', version: String(version) });
}

/**
 * Mounts what the pages need on the coordinator's app (pass it as
 * createApp's `pages` option): the filters endpoint and the static pages.
 */
export function mountWeb(app: Hono, coord: Coordinator, opts: WebAppOptions = {}): void {
  app.get(`${PATHS.admin.jobs}/:id/filters`, (c) => {
    const n = Math.min(400, Math.max(1, Math.floor(Number(c.req.query('n') ?? 64)) || 64));
    const body = filtersOf(coord, c.req.param('id'), n);
    return c.body(body as Uint8Array<ArrayBuffer>, 200, { 'content-type': SAFETENSORS_TYPE, 'cache-control': 'no-store' });
  });
  app.route('/', webApp(opts));
}

/** Newest modification time of the pages' sources (what Vite bundles). */
function newestSource(): number {
  let newest = 0;
  const walk = (dir: string): void => {
    if (!existsSync(dir)) return;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  for (const d of ['client/web', 'client/worker', 'core', 'coordinator/web', 'datasets']) walk(join(REPO_ROOT, d));
  newest = Math.max(newest, statSync(join(REPO_ROOT, 'vite.config.ts')).mtimeMs);
  return newest;
}
