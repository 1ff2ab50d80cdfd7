/**
 * The admin token: created at the first start (printed once by the caller),
 * stored only as a SHA-256 hash in <data>/admin-token.sha256. A token given
 * by flag or TESSERA_ADMIN_TOKEN replaces the stored hash.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OperatorError } from './operator-error.ts';

export function sha256Hex(s: string | Uint8Array): string {
  return createHash('sha256').update(s).digest('hex');
}

export interface AdminToken {
  readonly hash: string;
  /** set only when this call created the token: print it once */
  readonly created?: string;
}

export const MIN_ADMIN_TOKEN_LENGTH = 16;

/** Refuses a given admin token that is too short (an OperatorError: checked before anything starts). */
export function checkAdminToken(given: string | undefined): void {
  if (given && given.length < MIN_ADMIN_TOKEN_LENGTH) {
    throw new OperatorError(`the admin token must be at least ${MIN_ADMIN_TOKEN_LENGTH} characters (this one has ${given.length}): pass a longer --admin-token or TESSERA_ADMIN_TOKEN, or neither to have one created`);
  }
}

export function ensureAdminToken(dataDir: string, given?: string): AdminToken {
  const file = join(dataDir, 'admin-token.sha256');
  if (given) {
    checkAdminToken(given);
    const hash = sha256Hex(given);
    writeFileSync(file, hash + '\n', { mode: 0o600 });
    return { hash };
  }
  if (existsSync(file)) {
    const hash = readFileSync(file, 'utf8').trim();
    if (!/^[0-9a-f]{64}$/.test(hash)) throw new Error(`${file} does not hold a SHA-256 hex digest; delete it to create a new admin token`);
    return { hash };
  }
  const token = randomBytes(24).toString('base64url');
  const hash = sha256Hex(token);
  writeFileSync(file, hash + '\n', { mode: 0o600 });
  return { hash, created: token };
}

/** Constant-time check of a presented token against the stored hash. */
export function checkToken(presented: string | undefined, hash: string): boolean {
  if (!presented) return false;
  const a = Buffer.from(sha256Hex(presented), 'hex');
  const b = Buffer.from(hash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}
