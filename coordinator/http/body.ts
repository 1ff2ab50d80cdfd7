/**
 * Reading request bodies: small JSON objects checked by their schemas, and
 * result uploads streamed into a receive slot under a size and a time
 * limit; the semaphore that bounds how many uploads are read at once.
 */
import type { Context } from 'hono';
import { concatBytes } from '../../core/bytes.ts';
import type { GenericSchema, InferOutput } from 'valibot';
import { parseWith } from '../../core/schemas.ts';
import type { ReceiveSlot } from '../aggregate/index.ts';
import type { Env } from './env.ts';
import { HttpError } from './errors.ts';

/** The answer to a body over `limit` bytes (413 `body-too-large`). */
export function tooLarge(limit: number) {
  return (c: Context): Response =>
    c.json({ error: 'body-too-large', detail: `body exceeds the ${limit}-byte limit` }, 413);
}

/**
 * The JSON body checked by its schema (core/schemas.ts); an empty body is
 * `{}`. 400 `bad-request` for a body that is not a JSON object, and a
 * ValidationError (400 with its issues by field) for one the schema refuses.
 */
export async function readJson<S extends GenericSchema>(c: Context, schema: S): Promise<InferOutput<S>> {
  const text = await c.req.text();
  let v: unknown = {};
  try {
    if (text) v = JSON.parse(text);
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('expected a JSON object');
  } catch (e) {
    throw new HttpError('bad-request', `body is not a JSON object: ${(e as Error).message}`);
  }
  return parseWith(schema, v, 'invalid request body');
}

/**
 * The chunks of a request body as they arrive. Served by @hono/node-server,
 * straight from Node's IncomingMessage (about twice as fast for a 6.7 MB
 * result as the web ReadableStream wrapped around it); under `app.request()`
 * (tests), the Request's own stream.
 */
export function bodyChunks(c: Context<Env>): AsyncIterator<Uint8Array> | null {
  const incoming = c.env?.incoming;
  // Not destroyed when reading stops early: the refusal (413, 408) still reaches the sender.
  if (incoming?.iterator) return incoming.iterator({ destroyOnReturn: false }) as AsyncIterator<Uint8Array>;
  const stream = c.req.raw.body;
  if (!stream) return null;
  const reader = stream.getReader();
  return {
    next: async () => {
      const r = await reader.read();
      return r.done ? { done: true, value: undefined } : { done: false, value: r.value };
    },
    return: async () => {
      void reader.cancel().catch(() => undefined);
      return { done: true, value: undefined };
    },
  };
}

// Refusals sent before the body is read to its end close the connection
// afterwards (Node then stops reading what is left).
export const CLOSE = { Connection: 'close' };

/**
 * Reads a request body into the receive slot (or JS memory without one),
 * refusing more than `max` bytes (413) and a body that takes longer than
 * `timeoutMs` (408: a slow sender must not hold one of the few intake slots).
 */
export async function readBody(chunks: AsyncIterator<Uint8Array> | null, slot: ReceiveSlot | null, max: number, timeoutMs: number): Promise<Uint8Array> {
  if (!chunks) return new Uint8Array(0);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new HttpError('upload-timeout', `the body took longer than ${timeoutMs} ms to arrive; upload again on a faster link or lease a smaller task`, CLOSE)), timeoutMs);
  });
  const parts: Uint8Array[] = [];
  let at = 0;
  const limit = slot ? Math.min(slot.size, max) : max;
  try {
    for (;;) {
      const next = chunks.next();
      next.catch(() => undefined); // still pending when the time runs out
      const r = await Promise.race([next, timeout]);
      if (r.done) break;
      const value = r.value;
      if (at + value.length > limit) throw new HttpError('body-too-large', `body exceeds the ${limit}-byte limit`, CLOSE);
      if (slot) slot.write(at, value);
      else parts.push(value);
      at += value.length;
    }
  } finally {
    clearTimeout(timer);
    void chunks.return?.()?.catch(() => undefined);
  }
  return slot ? slot.view(at) : concatBytes(parts);
}

/** A counting semaphore (FIFO). */
export class Semaphore {
  private waiting: (() => void)[] = [];
  constructor(private free: number) {}

  acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return Promise.resolve();
    }
    return new Promise((r) => this.waiting.push(r));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}

/** One FIFO semaphore per key (a worker, an address), each of `size`; a key holds memory only while in use. */
export class KeyedSemaphore {
  private readonly byKey = new Map<string, { sem: Semaphore; users: number }>();
  constructor(private readonly size: number) {}

  /** Waits for a place under `key`; the function returned gives it back. */
  async acquire(key: string): Promise<() => void> {
    let e = this.byKey.get(key);
    if (!e) {
      e = { sem: new Semaphore(this.size), users: 0 };
      this.byKey.set(key, e);
    }
    e.users++;
    const entry = e;
    await entry.sem.acquire();
    return () => {
      entry.sem.release();
      if (--entry.users === 0) this.byKey.delete(key);
    };
  }
}
