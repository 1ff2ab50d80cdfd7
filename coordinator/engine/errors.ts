/**
 * The one error type the engine throws: a protocol ErrorCode and a detail
 * for people. The engine knows nothing of HTTP; coordinator/http/errors.ts
 * maps each code to its status code (one table).
 */
import type { ErrorCode } from '../../core/protocol/index.ts';

export class DomainError extends Error {
  constructor(readonly code: ErrorCode, readonly detail: string) {
    super(detail);
    this.name = 'DomainError';
  }
}
