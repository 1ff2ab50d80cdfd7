/**
 * The one error type HTTP handlers throw: a status, a protocol ErrorCode and
 * a detail for people. app.ts turns it into the JSON body `{error, detail}`.
 */
import type { ApiError, ErrorCode } from '../core/protocol/index.ts';

export type HttpStatus = 400 | 401 | 403 | 404 | 408 | 409 | 410 | 413 | 422 | 429 | 500 | 503;

export class HttpError extends Error {
  constructor(readonly status: HttpStatus, readonly code: ErrorCode, detail: string, readonly headers: Record<string, string> = {}) {
    super(detail);
    this.name = 'HttpError';
  }

  body(): ApiError {
    return { error: this.code, detail: this.message };
  }
}
