/** The worker's side of HTTP: errors the coordinator answers with, response bodies into reused memory, waiting. */
import { concatBytes } from '../../core/bytes.ts';
import type { ApiError } from '../../core/protocol/index.ts';

/** A request the coordinator answered with an error status. */
export class CoordinatorError extends Error {
  constructor(readonly status: number, readonly body: ApiError) {
    super(`${status} ${body.error}: ${body.detail}`);
    this.name = 'CoordinatorError';
  }
}

/** The coordinator's error answer as a CoordinatorError (its JSON body, or a stand-in where it has none). */
export async function coordinatorError(res: Response): Promise<CoordinatorError> {
  let body: ApiError;
  try {
    body = (await res.json()) as ApiError;
  } catch {
    body = { error: 'internal', detail: `HTTP ${res.status} without a JSON error body` };
  }
  return new CoordinatorError(res.status, body);
}

/** Waits ms, or less when the signal aborts. */
export const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

/**
 * A response body: into `into` while it fits (reused memory, see
 * GridWorker.weights), else into new memory. The caller checks the bytes
 * against their hash, so a length header that does not describe the body (a
 * compressing proxy) costs only the reuse.
 */
export async function readBytes(res: Response, into?: Uint8Array): Promise<Uint8Array> {
  const declared = Number(res.headers.get('content-length'));
  if (!into || !res.body || !(declared <= into.length)) return new Uint8Array(await res.arrayBuffer());
  const reader = res.body.getReader();
  let at = 0;
  let spill: Uint8Array[] | null = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    if (!spill && at + value.length <= into.length) into.set(value, at);
    else (spill ??= [into.slice(0, at)]).push(value);
    at += value.length;
  }
  return spill ? concatBytes(spill) : into.subarray(0, at);
}
