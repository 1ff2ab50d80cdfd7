/**
 * Errors at the HTTP edge: HttpError (a status, a protocol ErrorCode, a
 * detail, extra headers) for refusals the HTTP layer makes itself, and the
 * one table that gives every ErrorCode its status, which is how the engine's
 * DomainError becomes an answer. app.ts turns both into the JSON body
 * `{error, detail}`.
 */
import type { ApiError, ErrorCode } from '../../core/protocol/index.ts';
import { DomainError } from '../engine/errors.ts';

export type HttpStatus = 400 | 401 | 403 | 404 | 408 | 409 | 410 | 413 | 422 | 429 | 500 | 503;

/** The status code of every error code. */
export const STATUS: Readonly<Record<ErrorCode, HttpStatus>> = {
  'bad-request': 400,
  'malformed-result': 400,
  unauthorized: 401,
  'worker-left': 401,
  forbidden: 403,
  'foreign-lease': 403,
  banned: 403,
  'not-found': 404,
  'unknown-lease': 404,
  'upload-timeout': 408,
  conflict: 409,
  'stale-weights': 409,
  'unknown-version': 409,
  'duplicate-result': 409,
  'lease-expired': 410,
  gone: 410,
  'body-too-large': 413,
  'shape-mismatch': 422,
  'count-mismatch': 422,
  'non-finite': 422,
  'norm-bound': 422,
  'wrong-mode': 422,
  'wrong-encoding': 422,
  'bad-scale': 422,
  'out-of-range': 422,
  'rate-limited': 429,
  'coverage-claim': 403,
  'sketch-mismatch': 422,
  internal: 500,
};

export class HttpError extends Error {
  readonly status: HttpStatus;

  constructor(readonly code: ErrorCode, detail: string, readonly headers: Record<string, string> = {}) {
    super(detail);
    this.name = 'HttpError';
    this.status = STATUS[code];
  }

  /** The answer to a domain error. */
  static from(e: DomainError): HttpError {
    return new HttpError(e.code, e.detail);
  }

  body(): ApiError {
    return { error: this.code, detail: this.message };
  }
}
