/**
 * Worker authentication: the token in WORKER_HEADER names a registered
 * worker (the engine's `unauthorized` or `worker-left` otherwise), which
 * handlers read as `c.get('worker')`. With a limiter, the request counts
 * against the worker's rate limit. Result uploads and lease returns are not
 * counted: each answers a lease the worker holds (and every lease took a
 * counted request), so they are bounded by leases; refusing one would throw
 * away finished work and stall the iteration until the lease expired.
 */
import type { MiddlewareHandler } from 'hono';
import { WORKER_HEADER } from '../../../core/protocol/index.ts';
import type { Coordinator } from '../../engine/coordinator.ts';
import type { Env } from '../env.ts';
import { takeToken, type RateLimiter } from './rate-limit.ts';

export interface WorkerAuthOptions {
  readonly coordinator: Pick<Coordinator, 'authenticate'>;
  /** count the request against the worker's rate limit */
  readonly limiter?: RateLimiter;
}

export function workerAuth(opts: WorkerAuthOptions): MiddlewareHandler<Env> {
  return async (c, next) => {
    const w = opts.coordinator.authenticate(c.req.header(WORKER_HEADER));
    if (opts.limiter) takeToken(opts.limiter, w.id);
    c.set('worker', w);
    await next();
  };
}
