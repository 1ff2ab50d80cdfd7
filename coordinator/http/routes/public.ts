/** Public routes: the grid's status (donate page) and the content-addressed blobs, cacheable forever. */
import type { Hono } from 'hono';
import { API_PREFIX, HASH_PATTERN, PATHS } from '../../../core/protocol/index.ts';
import type { Coordinator } from '../../engine/coordinator.ts';
import type { Env } from '../env.ts';
import { HttpError } from '../errors.ts';

export function publicRoutes(app: Hono<Env>, coord: Coordinator): void {
  app.get(PATHS.status, (c) => c.json(coord.publicStatus()));

  app.get(`${API_PREFIX}/blobs/:hash`, (c) => {
    const hash = c.req.param('hash');
    if (!HASH_PATTERN.test(hash)) throw new HttpError('bad-request', 'a blob hash is 64 lowercase hex digits');
    const b = coord.blob(hash);
    const etag = `"${hash}"`;
    c.header('ETag', etag);
    c.header('Cache-Control', 'public, max-age=31536000, immutable');
    const inm = c.req.header('If-None-Match');
    if (inm && inm.split(',').some((t) => t.trim() === etag || t.trim() === `W/${etag}` || t.trim() === '*')) return c.body(null, 304);
    coord.noteBytesOut(b.bytes.length);
    // The coordinator may reuse a retired weights buffer only once this response has ended.
    const outgoing = c.env?.outgoing;
    if (outgoing) outgoing.once('close', coord.holdBlob(hash));
    c.header('Content-Type', b.type);
    c.header('Content-Length', String(b.bytes.length));
    return c.body(b.bytes as Uint8Array<ArrayBuffer>, 200);
  });
}
