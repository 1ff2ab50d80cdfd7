/**
 * Worker routes: register, heartbeat, leave, lease (long-poll), upload a
 * result, return a lease. Request bodies are checked here; the engine does
 * the rest.
 */
import type { Hono, MiddlewareHandler } from 'hono';
import { API_PREFIX, PATHS, TREE_HEADER } from '../../../core/protocol/index.ts';
import { HeartbeatBody, LeaseBody, RegisterBody } from '../../../core/schemas.ts';
import type { ReceiveSlot } from '../../aggregate/index.ts';
import type { Coordinator } from '../../engine/coordinator.ts';
import { DomainError } from '../../engine/errors.ts';
import { networkPrefix, plainAddress } from '../address.ts';
import { bodyChunks, CLOSE, KeyedSemaphore, readBody, readJson, Semaphore } from '../body.ts';
import type { Env } from '../env.ts';
import { HttpError } from '../errors.ts';
import { rateLimit, RateLimiter, takeToken, type RateLimitOptions } from '../middleware/rate-limit.ts';
import { resultLimit } from '../middleware/result-limit.ts';
import { workerAuth } from '../middleware/worker-auth.ts';

export interface WorkerRouteOptions {
  readonly limiter: RateLimiter;
  /** the JSON body limit */
  readonly smallBody: MiddlewareHandler;
  /** result bodies one client address may have read at once (default half of maxConcurrentUploads, at least 1) */
  readonly uploadsPerAddress?: number;
  /** registrations per client address and per network (networkPrefix); default REGISTRATION_LIMIT */
  readonly registrationLimit?: RegistrationLimit;
}

export interface RegistrationLimit {
  readonly perAddress: RateLimitOptions;
  readonly perNetwork: RateLimitOptions;
}

/**
 * What a person needs: a few dozen workers at once from an address (npm
 * start's local ones, tabs), then one every two seconds; twice that from a
 * network (127.0.0.0/8, an IPv4 /24, an IPv6 /64: a lab, bench/scaling's 64
 * namespaces), then one a second.
 */
export const REGISTRATION_LIMIT: RegistrationLimit = {
  perAddress: { perSecond: 0.5, burst: 32 },
  perNetwork: { perSecond: 1, burst: 64 },
};

export function workerRoutes(app: Hono<Env>, coord: Coordinator, opts: WorkerRouteOptions): void {
  const { limiter, smallBody } = opts;
  const counted = workerAuth({ coordinator: coord, limiter });
  const uncounted = workerAuth({ coordinator: coord });
  const perAddress = rateLimit({ limiter, key: (c) => `addr:${c.env?.incoming?.socket?.remoteAddress ?? 'local'}` });
  const registrations = opts.registrationLimit ?? REGISTRATION_LIMIT;
  const byAddress = new RateLimiter(registrations.perAddress);
  const byNetwork = new RateLimiter(registrations.perNetwork);
  const registrationLimit: MiddlewareHandler<Env> = async (c, next) => {
    const address = plainAddress(c.env?.incoming?.socket?.remoteAddress ?? 'local');
    takeToken(byNetwork, networkPrefix(address));
    takeToken(byAddress, address);
    await next();
  };

  // the address's prefix is the worker's registration source (its reputation: coordinator/trust/)
  app.post(PATHS.register, smallBody, perAddress, registrationLimit, async (c) =>
    c.json(coord.register(await readJson(c, RegisterBody), c.env?.incoming?.socket?.remoteAddress), 201),
  );

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
  //
  // The lease is checked from the URL and the worker's token before a slot is
  // taken or a byte read, so only a worker holding the lease can make an
  // upload wait; and a worker reads one body at a time, an address at most
  // uploadsPerAddress, so slow bodies of one worker or one address cannot
  // hold every slot.
  const uploads = new Semaphore(coord.maxConcurrentUploads);
  const perWorker = new KeyedSemaphore(1);
  const perAddressUploads = new KeyedSemaphore(opts.uploadsPerAddress ?? Math.max(1, Math.ceil(coord.maxConcurrentUploads / 2)));
  app.put(`${API_PREFIX}/leases/:leaseId/result`, resultLimit(() => coord.maxResultBytes), uncounted, async (c) => {
    const worker = c.get('worker');
    const leaseId = c.req.param('leaseId');
    const tree = c.req.header(TREE_HEADER); // a tree's partial sum (routes/peer.ts)
    try {
      coord.admitUpload(worker, leaseId, tree);
    } catch (e) {
      if (e instanceof DomainError) throw new HttpError(e.code, e.detail, CLOSE);
      throw e;
    }
    const releaseWorker = await perWorker.acquire(worker.id);
    let releaseAddress: (() => void) | null = null;
    let slot: ReceiveSlot | null = null;
    let reading = false;
    try {
      releaseAddress = await perAddressUploads.acquire(plainAddress(c.env?.incoming?.socket?.remoteAddress ?? 'local'));
      await uploads.acquire();
      reading = true;
      const length = Number(c.req.header('content-length'));
      slot = Number.isSafeInteger(length) && length > 0 ? coord.receiveSlot(length) : null;
      const body = await readBody(bodyChunks(c), slot, coord.maxResultBytes, coord.uploadTimeoutMs);
      return c.json(coord.submitResult(worker, leaseId, body, tree));
    } finally {
      slot?.release();
      if (reading) uploads.release();
      releaseAddress?.();
      releaseWorker();
    }
  });

  app.post(`${API_PREFIX}/leases/:leaseId/return`, uncounted, (c) => {
    coord.returnLease(c.get('worker'), c.req.param('leaseId'));
    return c.json({ ok: true });
  });
}
