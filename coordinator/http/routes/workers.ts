/**
 * Worker routes: register, heartbeat, leave, lease (long-poll), upload a
 * result, return a lease. Request bodies are checked here; the engine does
 * the rest.
 */
import type { Hono, MiddlewareHandler } from 'hono';
import {
  API_PREFIX,
  MAX_TASKS_PER_REQUEST,
  PATHS,
  type HeartbeatRequest,
  type LeaseRequest,
  type RegisterRequest,
} from '../../../core/protocol/index.ts';
import type { Coordinator } from '../../engine/coordinator.ts';
import { bodyChunks, hashList, readBody, readJson, Semaphore } from '../body.ts';
import type { Env } from '../env.ts';
import { HttpError } from '../errors.ts';
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

  app.post(PATHS.register, smallBody, perAddress, async (c) => {
    const b = await readJson<Partial<RegisterRequest>>(c);
    const name = typeof b.name === 'string' ? b.name.slice(0, 64) : '';
    if (!name) throw new HttpError('bad-request', '"name" must be a non-empty string');
    if (b.runtime !== 'deno' && b.runtime !== 'browser' && b.runtime !== 'node') throw new HttpError('bad-request', '"runtime" must be "deno", "browser" or "node"');
    if (b.backend !== 'cpu' && b.backend !== 'webgpu') throw new HttpError('bad-request', '"backend" must be "cpu" or "webgpu"');
    const adapter = typeof b.adapter === 'string' ? b.adapter.slice(0, 200) : '';
    const cached = hashList(b.cached, 'cached');
    return c.json(coord.register({ name, runtime: b.runtime, backend: b.backend, adapter, cached }), 201);
  });

  app.post(PATHS.heartbeat, smallBody, counted, async (c) => {
    const b = await readJson<Partial<HeartbeatRequest>>(c);
    const s = (b.stats ?? {}) as unknown as Record<string, unknown>;
    const num = (k: string): number => {
      const v = s[k];
      return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0;
    };
    return c.json(
      coord.heartbeat(c.get('worker'), {
        stats: { tasksDone: num('tasksDone'), examplesDone: num('examplesDone'), examplesPerSecond: num('examplesPerSecond'), bytesUp: num('bytesUp'), bytesDown: num('bytesDown') },
        cached: hashList(b.cached, 'cached'),
      }),
    );
  });

  app.post(PATHS.leave, counted, (c) => {
    coord.leave(c.get('worker'));
    return c.json({ ok: true });
  });

  app.post(PATHS.lease, smallBody, counted, async (c) => {
    const b = await readJson<Partial<LeaseRequest>>(c);
    const waitMs = typeof b.waitMs === 'number' && Number.isFinite(b.waitMs) ? b.waitMs : 0;
    const maxTasks = b.maxTasks === undefined ? 1 : b.maxTasks;
    if (!Number.isInteger(maxTasks) || maxTasks < 1 || maxTasks > MAX_TASKS_PER_REQUEST) {
      throw new HttpError('bad-request', `"maxTasks" must be an integer from 1 to ${MAX_TASKS_PER_REQUEST}`);
    }
    return c.json(await coord.lease(c.get('worker'), hashList(b.cached, 'cached'), waitMs, maxTasks));
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
      return c.json(coord.submitResult(c.get('worker'), c.req.param('leaseId'), body));
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
