/**
 * Cross-origin isolation for the web pages: `Cross-Origin-Opener-Policy:
 * same-origin` and `Cross-Origin-Embedder-Policy: require-corp` on every page
 * and asset, so the donate page (and its Web Workers) get SharedArrayBuffer
 * and the CPU backend can run on several threads (core/cpu/threads.ts).
 * The pages load only same-origin resources, which require-corp allows.
 * API paths (/api/...) are left alone: they are fetched, not embedded.
 */
import type { MiddlewareHandler } from 'hono';

export const ISOLATION_HEADERS = {
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-embedder-policy': 'require-corp',
} as const;

/** Middleware: sets the two headers on every response outside /api. */
export function crossOriginIsolation(): MiddlewareHandler {
  return async (c, next) => {
    await next();
    const path = c.req.path;
    if (path === '/api' || path.startsWith('/api/')) return;
    for (const [name, value] of Object.entries(ISOLATION_HEADERS)) c.res.headers.set(name, value);
  };
}
