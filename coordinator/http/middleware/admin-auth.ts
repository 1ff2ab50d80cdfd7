/**
 * Admin authentication: "Authorization: Bearer <admin token>", checked
 * against the token's stored SHA-256. An EventSource cannot set headers, so
 * the paths in `queryTokenPaths` also take the token as `?token=`.
 */
import type { MiddlewareHandler } from 'hono';
import { checkToken } from '../../auth.ts';
import { HttpError } from '../errors.ts';

export interface AdminAuthOptions {
  /** SHA-256 hex of the admin token */
  readonly tokenHash: string;
  /** paths that may carry the token in the query (server-sent events) */
  readonly queryTokenPaths?: readonly string[];
}

export function adminAuth(opts: AdminAuthOptions): MiddlewareHandler {
  return async (c, next) => {
    const auth = c.req.header('Authorization');
    const bearer = auth?.startsWith('Bearer ') ? auth.slice(7).trim() : undefined;
    const token = bearer ?? (opts.queryTokenPaths?.includes(c.req.path) ? c.req.query('token') : undefined);
    if (!checkToken(token, opts.tokenHash)) {
      throw new HttpError('unauthorized', 'admin endpoints need "Authorization: Bearer <admin token>" (printed at the first start)', { 'WWW-Authenticate': 'Bearer' });
    }
    await next();
  };
}
