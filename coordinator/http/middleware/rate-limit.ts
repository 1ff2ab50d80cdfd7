/**
 * Token-bucket rate limiting per key (worker id, or client address for
 * registration): the bucket (RateLimiter), and the middleware that spends a
 * token per request or answers 429 `rate-limited` with Retry-After.
 */
import type { Context, MiddlewareHandler } from 'hono';
import { HttpError } from '../errors.ts';
import type { Env } from '../env.ts';

export interface RateLimitOptions {
  /** sustained requests per second */
  readonly perSecond: number;
  /** bucket size: requests allowed in a burst */
  readonly burst: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(readonly opts: RateLimitOptions, private readonly now: () => number = Date.now) {}

  /** 0 when allowed (a token is spent), else the ms to wait. */
  take(key: string): number {
    const t = this.now();
    let b = this.buckets.get(key);
    if (!b) {
      b = { tokens: this.opts.burst, at: t };
      this.buckets.set(key, b);
      if (this.buckets.size > 100_000) this.sweep(t);
    }
    b.tokens = Math.min(this.opts.burst, b.tokens + ((t - b.at) / 1000) * this.opts.perSecond);
    b.at = t;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - b.tokens) / this.opts.perSecond) * 1000);
  }

  private sweep(t: number): void {
    for (const [k, b] of this.buckets) if (t - b.at > 60_000) this.buckets.delete(k);
  }
}

/** Spends a token of `key`; throws 429 `rate-limited` when there is none. */
export function takeToken(limiter: RateLimiter, key: string): void {
  const wait = limiter.take(key);
  if (wait > 0) throw new HttpError('rate-limited', `too many requests; retry in ${wait} ms`, { 'Retry-After': String(Math.ceil(wait / 1000)) });
}

export interface RateLimitMiddlewareOptions {
  readonly limiter: RateLimiter;
  /** the bucket a request draws from */
  readonly key: (c: Context<Env>) => string;
}

export function rateLimit(opts: RateLimitMiddlewareOptions): MiddlewareHandler<Env> {
  return async (c, next) => {
    takeToken(opts.limiter, opts.key(c));
    await next();
  };
}
