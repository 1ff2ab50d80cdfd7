/**
 * The coordinator's HTTP face: a Hono app over a Coordinator. Tests call
 * `createApp(...).request()` without opening a port; server.ts serves it
 * with @hono/node-server. Paths and message types come from
 * client/core/protocol.ts; coordinator/API.md documents them.
 */
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { streamSSE } from 'hono/streaming';
import { concatBytes } from '../client/core/bytes.ts';
import {
  API_PREFIX,
  HASH_PATTERN,
  MAX_TASKS_PER_REQUEST,
  PATHS,
  SAFETENSORS_TYPE,
  WORKER_HEADER,
  type HeartbeatRequest,
  type JobAction,
  type LeaseRequest,
  type RegisterRequest,
} from '../client/core/protocol.ts';
import { checkToken } from './auth.ts';
import type { ReceiveSlot } from './aggregate/index.ts';
import type { Coordinator } from './coordinator.ts';
import { HttpError } from './errors.ts';
import { RateLimiter, type RateLimitOptions } from './rate-limit.ts';

export interface AppOptions {
  /** SHA-256 hex of the admin token */
  readonly adminTokenHash: string;
  /** per worker (and per address for registration); default 200/s, burst 400 */
  readonly rateLimit?: RateLimitOptions;
  /** largest JSON body, bytes (default 64 KiB) */
  readonly maxJsonBytes?: number;
  /** extra routes (the admin and donate pages) mounted after the API */
  readonly pages?: (app: Hono) => void;
}

const JSON_LIMIT = 64 * 1024;

type Env = {
  Bindings: {
    incoming?: { socket?: { remoteAddress?: string }; iterator?(opts: { destroyOnReturn: boolean }): AsyncIterator<Uint8Array> };
    outgoing?: { once(event: 'close', fn: () => void): unknown };
  };
};

function fail(c: Context, e: HttpError): Response {
  for (const [k, v] of Object.entries(e.headers)) c.header(k, v);
  return c.json(e.body(), e.status);
}

async function readJson<T>(c: Context): Promise<T> {
  const text = await c.req.text();
  if (!text) return {} as T;
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('expected a JSON object');
    return v as T;
  } catch (e) {
    throw new HttpError(400, 'bad-request', `body is not a JSON object: ${(e as Error).message}`);
  }
}

function tooLarge(limit: number) {
  return (c: Context): Response =>
    c.json({ error: 'body-too-large', detail: `body exceeds the ${limit}-byte limit` }, 413);
}

function strings(v: unknown, field: string, max = 4096): string[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.length > max || !v.every((h) => typeof h === 'string' && HASH_PATTERN.test(h))) {
    throw new HttpError(400, 'bad-request', `"${field}" must be an array of at most ${max} SHA-256 hex hashes`);
  }
  return v as string[];
}

/**
 * The chunks of a request body as they arrive. Served by @hono/node-server,
 * straight from Node's IncomingMessage (about twice as fast for a 6.7 MB
 * result as the web ReadableStream wrapped around it); under `app.request()`
 * (tests), the Request's own stream.
 */
function bodyChunks(c: Context<Env>): AsyncIterator<Uint8Array> | null {
  const incoming = c.env?.incoming;
  // Not destroyed when reading stops early: the refusal (413, 408) still reaches the sender.
  if (incoming?.iterator) return incoming.iterator({ destroyOnReturn: false });
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
const CLOSE = { Connection: 'close' };

/**
 * Reads a request body into the receive slot (or JS memory without one),
 * refusing more than `max` bytes (413) and a body that takes longer than
 * `timeoutMs` (408: a slow sender must not hold one of the few intake slots).
 */
async function readBody(chunks: AsyncIterator<Uint8Array> | null, slot: ReceiveSlot | null, max: number, timeoutMs: number): Promise<Uint8Array> {
  if (!chunks) return new Uint8Array(0);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new HttpError(408, 'upload-timeout', `the body took longer than ${timeoutMs} ms to arrive; upload again on a faster link or lease a smaller task`, CLOSE)), timeoutMs);
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
      if (at + value.length > limit) throw new HttpError(413, 'body-too-large', `body exceeds the ${limit}-byte limit`, CLOSE);
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
class Semaphore {
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

export function createApp(coord: Coordinator, opts: AppOptions): Hono<Env> {
  const app = new Hono<Env>();
  const limiter = new RateLimiter(opts.rateLimit ?? { perSecond: 200, burst: 400 });
  const jsonLimit = opts.maxJsonBytes ?? JSON_LIMIT;
  const smallBody = bodyLimit({ maxSize: jsonLimit, onError: tooLarge(jsonLimit) });

  app.onError((err, c) => {
    if (err instanceof HttpError) return fail(c, err);
    console.error(err);
    return c.json({ error: 'internal', detail: `internal error: ${err.message}` }, 500);
  });
  app.notFound((c) => c.json({ error: 'not-found', detail: `no route ${c.req.method} ${c.req.path}` }, 404));

  const limit = (key: string): void => {
    const wait = limiter.take(key);
    if (wait > 0) throw new HttpError(429, 'rate-limited', `too many requests; retry in ${wait} ms`, { 'Retry-After': String(Math.ceil(wait / 1000)) });
  };
  /**
   * The authenticated worker, its request counted against its rate limit.
   * Result uploads and lease returns are not counted: each answers a lease the
   * worker holds (and every lease took a counted request), so they are bounded
   * by leases; refusing one would throw away finished work and stall the
   * iteration until the lease expired.
   */
  const worker = (c: Context, counted = true) => {
    const w = coord.authenticate(c.req.header(WORKER_HEADER));
    if (counted) limit(w.row.id);
    return w;
  };

  // -------- public
  app.get(PATHS.status, (c) => c.json(coord.publicStatus()));

  app.get(`${API_PREFIX}/blobs/:hash`, (c) => {
    const hash = c.req.param('hash');
    if (!HASH_PATTERN.test(hash)) throw new HttpError(400, 'bad-request', 'a blob hash is 64 lowercase hex digits');
    const b = coord.blob(hash);
    const etag = `"${hash}"`;
    c.header('ETag', etag);
    c.header('Cache-Control', 'public, max-age=31536000, immutable');
    const inm = c.req.header('If-None-Match');
    if (inm && inm.split(',').some((t) => t.trim() === etag || t.trim() === `W/${etag}` || t.trim() === '*')) return c.body(null, 304);
    coord.noteBytesOut(b.bytes.length);
    // The coordinator may reuse a retired weights buffer only once this response has ended.
    const outgoing = c.env?.outgoing;
    if (outgoing) outgoing.once('close', coord.holdBlob(hash));
    c.header('Content-Type', b.type);
    c.header('Content-Length', String(b.bytes.length));
    return c.body(b.bytes as Uint8Array<ArrayBuffer>, 200);
  });

  // -------- workers
  app.post(PATHS.register, smallBody, async (c) => {
    const address = c.env?.incoming?.socket?.remoteAddress;
    limit(`addr:${address ?? 'local'}`);
    const b = await readJson<Partial<RegisterRequest>>(c);
    const name = typeof b.name === 'string' ? b.name.slice(0, 64) : '';
    if (!name) throw new HttpError(400, 'bad-request', '"name" must be a non-empty string');
    if (b.runtime !== 'deno' && b.runtime !== 'browser' && b.runtime !== 'node') throw new HttpError(400, 'bad-request', '"runtime" must be "deno", "browser" or "node"');
    if (b.backend !== 'cpu' && b.backend !== 'webgpu') throw new HttpError(400, 'bad-request', '"backend" must be "cpu" or "webgpu"');
    const adapter = typeof b.adapter === 'string' ? b.adapter.slice(0, 200) : '';
    const cached = strings(b.cached, 'cached');
    return c.json(coord.register({ name, runtime: b.runtime, backend: b.backend, adapter, cached }, address), 201);
  });

  app.post(PATHS.heartbeat, smallBody, async (c) => {
    const w = worker(c);
    const b = await readJson<Partial<HeartbeatRequest>>(c);
    const s = (b.stats ?? {}) as unknown as Record<string, unknown>;
    const num = (k: string): number => {
      const v = s[k];
      return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0;
    };
    return c.json(
      coord.heartbeat(w, {
        stats: { tasksDone: num('tasksDone'), examplesDone: num('examplesDone'), examplesPerSecond: num('examplesPerSecond'), bytesUp: num('bytesUp'), bytesDown: num('bytesDown') },
        cached: strings(b.cached, 'cached'),
      }),
    );
  });

  app.post(PATHS.leave, (c) => {
    coord.leave(worker(c));
    return c.json({ ok: true });
  });

  app.post(PATHS.lease, smallBody, async (c) => {
    const w = worker(c);
    const b = await readJson<Partial<LeaseRequest>>(c);
    const waitMs = typeof b.waitMs === 'number' && Number.isFinite(b.waitMs) ? b.waitMs : 0;
    const maxTasks = b.maxTasks === undefined ? 1 : b.maxTasks;
    if (!Number.isInteger(maxTasks) || maxTasks < 1 || maxTasks > MAX_TASKS_PER_REQUEST) {
      throw new HttpError(400, 'bad-request', `"maxTasks" must be an integer from 1 to ${MAX_TASKS_PER_REQUEST}`);
    }
    return c.json(await coord.lease(w, strings(b.cached, 'cached'), waitMs, maxTasks));
  });

  // A declared length over the limit is refused before reading; readBody()
  // enforces the limit (and a time limit) on what actually arrives, chunked or not.
  const resultLimit: MiddlewareHandler = async (c, next) => {
    const max = coord.maxResultBytes;
    const declared = Number(c.req.header('content-length'));
    if (Number.isFinite(declared) && declared > max) return tooLarge(max)(c);
    await next();
  };
  // At most maxConcurrentUploads bodies are read at once: further uploads wait
  // unread, so TCP backpressure, not memory, absorbs a burst of 6.7 MB
  // uploads, and lease requests are not starved. A body with a length is read
  // straight into the aggregator's WebAssembly memory (a receive slot).
  const uploads = new Semaphore(coord.maxConcurrentUploads);
  app.put(`${API_PREFIX}/leases/:leaseId/result`, resultLimit, async (c) => {
    const w = worker(c, false);
    await uploads.acquire();
    const length = Number(c.req.header('content-length'));
    const slot = Number.isSafeInteger(length) && length > 0 ? coord.receiveSlot(length) : null;
    try {
      const body = await readBody(bodyChunks(c), slot, coord.maxResultBytes, coord.uploadTimeoutMs);
      return c.json(coord.submitResult(w, c.req.param('leaseId'), body));
    } finally {
      slot?.release();
      uploads.release();
    }
  });

  app.post(`${API_PREFIX}/leases/:leaseId/return`, (c) => {
    coord.returnLease(worker(c, false), c.req.param('leaseId'));
    return c.json({ ok: true });
  });

  // -------- admin
  const admin: MiddlewareHandler = async (c, next) => {
    const auth = c.req.header('Authorization');
    const bearer = auth?.startsWith('Bearer ') ? auth.slice(7).trim() : undefined;
    const token = bearer ?? (c.req.path === PATHS.admin.events ? c.req.query('token') : undefined);
    if (!checkToken(token, opts.adminTokenHash)) {
      throw new HttpError(401, 'unauthorized', 'admin endpoints need "Authorization: Bearer <admin token>" (printed at the first start)', { 'WWW-Authenticate': 'Bearer' });
    }
    await next();
  };
  app.use(`${API_PREFIX}/admin/*`, admin);

  app.get(PATHS.admin.jobs, (c) => c.json({ jobs: coord.jobs() }));
  app.post(PATHS.admin.jobs, smallBody, async (c) => c.json(await coord.createJob(await readJson<unknown>(c)), 201));
  app.get(`${PATHS.admin.jobs}/:id`, (c) => c.json(coord.summary(c.req.param('id'))));
  app.post(`${PATHS.admin.jobs}/:id/:action{start|pause|resume|cancel}`, async (c) =>
    c.json(await coord.action(c.req.param('id'), c.req.param('action') as JobAction)),
  );
  app.get(`${PATHS.admin.jobs}/:id/metrics`, (c) => {
    const since = Number(c.req.query('since') ?? 0);
    return c.json(coord.metrics(c.req.param('id'), Number.isSafeInteger(since) && since >= 0 ? since : 0));
  });
  app.get(`${PATHS.admin.jobs}/:id/weights`, (c) => {
    const id = c.req.param('id');
    const bytes = coord.weightsOf(id);
    c.header('Content-Type', SAFETENSORS_TYPE);
    c.header('Content-Disposition', `attachment; filename="${id}-weights.safetensors"`);
    return c.body(bytes as Uint8Array<ArrayBuffer>, 200);
  });
  app.get(PATHS.admin.workers, (c) => c.json({ workers: coord.workers() }));
  // a ban and its lifting (the trust records: coordinator/trust/)
  app.post(`${PATHS.admin.workers}/:id/ban`, (c) => c.json(coord.banWorker(c.req.param('id'))));
  app.post(`${PATHS.admin.workers}/:id/unban`, (c) => c.json(coord.liftBan(c.req.param('id'))));
  app.get(PATHS.admin.events, (c) =>
    streamSSE(c, async (stream) => {
      let id = 0;
      const queue: string[] = [];
      let wake: (() => void) | null = null;
      const off = coord.events.subscribe((e) => {
        queue.push(JSON.stringify(e));
        if (queue.length > 10_000) queue.shift();
        wake?.();
      });
      stream.onAbort(() => {
        off();
        wake?.();
      });
      await stream.writeSSE({ event: 'hello', data: JSON.stringify(coord.publicStatus()), id: String(id++) });
      while (!stream.aborted && !stream.closed) {
        while (queue.length) {
          const data = queue.shift()!;
          const type = (JSON.parse(data) as { type: string }).type;
          await stream.writeSSE({ event: type, data, id: String(id++) });
        }
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 15_000);
        });
        wake = null;
        if (!queue.length && !stream.aborted) await stream.write(': keep-alive\n\n');
      }
      off();
    }),
  );

  opts.pages?.(app as unknown as Hono);
  return app;
}
