/**
 * The result body limit, first half: a declared Content-Length over the
 * limit is refused (413) before a byte is read. readBody (http/body.ts)
 * enforces the limit, and a time limit, on what actually arrives, chunked or
 * not. The limit is read per request: it follows the active job's model.
 */
import type { MiddlewareHandler } from 'hono';
import { tooLarge } from '../body.ts';

export function resultLimit(max: () => number): MiddlewareHandler {
  return async (c, next) => {
    const limit = max();
    const declared = Number(c.req.header('content-length'));
    if (Number.isFinite(declared) && declared > limit) return tooLarge(limit)(c);
    await next();
  };
}
