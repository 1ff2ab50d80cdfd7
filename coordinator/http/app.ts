/**
 * The coordinator's HTTP face: a Hono app over a Coordinator, its routes in
 * routes/ and its middleware (worker and admin auth, rate limit, result body
 * limit) in middleware/. Tests call `createApp(...).request()` without
 * opening a port; server.ts serves it with @hono/node-server. Paths and
 * message types come from core/protocol/; coordinator/API.md documents them.
 * Errors become `{error, detail}` here, with the status of errors.ts's table.
 */
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { API_PREFIX, PATHS } from '../../core/protocol/index.ts';
import type { Coordinator } from '../engine/coordinator.ts';
import { ValidationError } from '../../core/schemas.ts';
import { DomainError } from '../engine/errors.ts';
import { tooLarge } from './body.ts';
import type { Env } from './env.ts';
import { HttpError } from './errors.ts';
import { adminAuth } from './middleware/admin-auth.ts';
import { RateLimiter, type RateLimitOptions } from './middleware/rate-limit.ts';
import { adminRoutes } from './routes/admin.ts';
import { peerRoutes } from './routes/peer.ts';
import { publicRoutes } from './routes/public.ts';
import { workerRoutes, type RegistrationLimit } from './routes/workers.ts';

export interface AppOptions {
  /** SHA-256 hex of the admin token */
  readonly adminTokenHash: string;
  /** per worker (and per address for registration); default 200/s, burst 400 */
  readonly rateLimit?: RateLimitOptions;
  /** largest JSON body, bytes (default 64 KiB) */
  readonly maxJsonBytes?: number;
  /** extra routes (the admin and donate pages) mounted after the API */
  readonly pages?: (app: Hono) => void;
  /** registrations per client address and per network (default REGISTRATION_LIMIT, routes/workers.ts) */
  readonly registrationLimit?: RegistrationLimit;
  /** result bodies one client address may have read at once (default half the intake slots, at least 1) */
  readonly uploadsPerAddress?: number;
}

const JSON_LIMIT = 64 * 1024;

function fail(c: Context, e: HttpError): Response {
  for (const [k, v] of Object.entries(e.headers)) c.header(k, v);
  return c.json(e.body(), e.status);
}

/** Whether an error is the request's body stream failing because its client disconnected (Node: 'aborted', ECONNRESET). */
function clientAborted(err: Error, c: Context<Env>): boolean {
  const incoming = c.env?.incoming as { aborted?: boolean; readableAborted?: boolean } | undefined;
  if (incoming?.aborted || incoming?.readableAborted) return true;
  const code = (err as { code?: unknown }).code;
  return err.message === 'aborted' || code === 'ECONNRESET' || code === 'ECONNABORTED' || code === 'ERR_STREAM_PREMATURE_CLOSE';
}

export function createApp(coord: Coordinator, opts: AppOptions): Hono<Env> {
  const app = new Hono<Env>();
  const limiter = new RateLimiter(opts.rateLimit ?? { perSecond: 200, burst: 400 });
  const jsonLimit = opts.maxJsonBytes ?? JSON_LIMIT;
  const smallBody = bodyLimit({ maxSize: jsonLimit, onError: tooLarge(jsonLimit) });

  app.onError((err, c) => {
    if (err instanceof HttpError) return fail(c, err);
    if (err instanceof DomainError) return fail(c, HttpError.from(err));
    if (err instanceof ValidationError) return c.json({ error: 'bad-request', detail: err.message, issues: err.issues }, 400);
    // The client went away mid-body: its loss, not an error of ours; nobody reads this answer.
    if (clientAborted(err, c)) return c.json({ error: 'bad-request', detail: 'the client closed the connection before its body arrived' }, 400);
    console.error(err);
    return c.json({ error: 'internal', detail: `internal error: ${err.message}` }, 500);
  });
  app.notFound((c) => c.json({ error: 'not-found', detail: `no route ${c.req.method} ${c.req.path}` }, 404));

  publicRoutes(app, coord);
  workerRoutes(app, coord, { limiter, smallBody, registrationLimit: opts.registrationLimit, uploadsPerAddress: opts.uploadsPerAddress });
  peerRoutes(app, coord, { limiter, smallBody });
  app.use(`${API_PREFIX}/admin/*`, adminAuth({ tokenHash: opts.adminTokenHash, queryTokenPaths: [PATHS.admin.events] }));
  adminRoutes(app, coord, smallBody);

  opts.pages?.(app as unknown as Hono);
  return app;
}
