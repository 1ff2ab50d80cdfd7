/**
 * Worker routes: register, heartbeat, leave, lease (long-poll), upload a
 * result, return a lease. Request bodies are checked here; the engine does
 * the rest.
 */
import type { Hono, MiddlewareHandler } from 'hono';
import { API_PREFIX, PATHS, TREE_HEADER } from '../../../core/protocol/index.ts';
import { HeartbeatBody, LeaseBody, RegisterBody } from '../../../core/schemas.ts';
import type { Coordinator } from '../../engine/coordinator.ts';
import { bodyChunks, readBody, readJson, Semaphore } from '../body.ts';
import type { Env } from '../env.ts';
import { rateLimit, type RateLimiter } from '../middleware/rate-limit.ts';
import { resultLimit } from '../middleware/result-limit.ts';
import { workerAuth } from '../middleware/worker-auth.ts';

export interface WorkerRouteOptions {
  readonly limiter: RateLimiter;
  /** the JSON body limit */
  readonly smallBody: MiddlewareHandler;
}

export function workerRoutes(app: Hono<Env>, coord: Coordinator, opts: WorkerRouteOptions): void {
  const { limiter, smallBody } = opts;
  const counted = workerAuth({ coordinator: coord, limiter });
  const uncounted = workerAuth({ coordinator: coord });
  const perAddress = rateLimit({ limiter, key: (c) => `addr:${c.env?.incoming?.socket?.remoteAddress ?? 'local'}` });

  app.post(PATHS.register, smallBody, perAddress, async (c) => c.json(coord.register(await readJson(c, RegisterBody)), 201));

  app.post(PATHS.heartbeat, smallBody, counted, async (c) => c.json(coord.heartbeat(c.get('worker'), await readJson(c, HeartbeatBody))));

  app.post(PATHS.leave, counted, (c) => {
    coord.leave(c.get('worker'));
    return c.json({ ok: true });
  });

  app.post(PATHS.lease, smallBody, counted, async (c) => {
    const b = await readJson(c, LeaseBody);
    return c.json(await coord.lease(c.get('worker'), b.cached, b.waitMs, b.maxTasks));
  });

  // At most maxConcurrentUploads bodies are read at once: further uploads wait
  // unread, so TCP backpressure, not memory, absorbs a burst of 6.7 MB
  // uploads, and lease requests are not starved. A body with a length is read
  // straight into the aggregator's WebAssembly memory (a receive slot).
  const uploads = new Semaphore(coord.maxConcurrentUploads);
  app.put(`${API_PREFIX}/leases/:leaseId/result`, resultLimit(() => coord.maxResultBytes), uncounted, async (c) => {
    await uploads.acquire();
    const length = Number(c.req.header('content-length'));
    const slot = Number.isSafeInteger(length) && length > 0 ? coord.receiveSlot(length) : null;
    try {
      const body = await readBody(bodyChunks(c), slot, coord.maxResultBytes, coord.uploadTimeoutMs);
      return c.json(coord.submitResult(c.get('worker'), c.req.param('leaseId'), body, c.req.header(TREE_HEADER))); // TREE_HEADER: a tree's partial (routes/peer.ts)
    } finally {
      slot?.release();
      uploads.release();
    }
  });

  app.post(`${API_PREFIX}/leases/:leaseId/return`, uncounted, (c) => {
    coord.returnLease(c.get('worker'), c.req.param('leaseId'));
    return c.json({ ok: true });
  });
}
