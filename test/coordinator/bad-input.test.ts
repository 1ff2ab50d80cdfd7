/**
 * Every kind of bad upload, through app.request(): each gets its status and
 * error code, and the training state (job, task and lease ledger, coverage,
 * weights) is unchanged afterwards.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { phaseTensors, tensorShapes } from '../../core/model/params.ts';
import { encodeResult, PATHS, WORKER_HEADER, type LeaseResponse, type RegisterResponse, type TaskLease } from '../../core/protocol/index.ts';
import { encodeSafetensors } from '../../core/safetensors.ts';
import { makeRig, SMALL_JOB, startJob, type Rig } from './harness.ts';

let rig: Rig;
let jobId: string;
let a: RegisterResponse;
let b: RegisterResponse;
let lease: TaskLease;

async function register(name: string): Promise<RegisterResponse> {
  const res = await rig.app.request(PATHS.register, { method: 'POST', body: JSON.stringify({ name, runtime: 'node', backend: 'cpu', adapter: 'test' }) });
  expect(res.status).toBe(201);
  return (await res.json()) as RegisterResponse;
}

function zeros(l: TaskLease, fill = 0): Map<string, Float32Array> {
  const shapes = tensorShapes(l.config);
  return new Map(phaseTensors(l.config, l.phase).map((n) => [n, new Float32Array(shapes.get(n)!.reduce((x, y) => x * y, 1)).fill(fill)]));
}

function validBody(l: TaskLease, over: Partial<{ weightsVersion: number; count: number; leaseId: string; grads: Map<string, Float32Array> }> = {}): Uint8Array {
  return encodeResult(
    { taskId: l.taskId, leaseId: over.leaseId ?? l.leaseId, weightsVersion: over.weightsVersion ?? l.weights.version, count: over.count ?? l.sample.count, loss: 1.5, correct: 0 },
    over.grads ?? zeros(l),
    tensorShapes(l.config),
  );
}

function put(leaseId: string, body: Uint8Array, token: string | null = a.token): Promise<Response> {
  const headers: Record<string, string> = { 'content-type': 'application/vnd.safetensors', 'content-length': String(body.length) };
  if (token) headers[WORKER_HEADER] = token;
  return Promise.resolve(rig.app.request(PATHS.result(leaseId), { method: 'PUT', headers, body: body as Uint8Array<ArrayBuffer> }));
}

/** The training state a bad upload must not change (the rejected counters are allowed to move). */
async function snapshot(): Promise<string> {
  const s = rig.coord.summary(jobId);
  const { rejectedResults: _r, lateResults: _l, ...job } = s;
  const weights = new Uint8Array(await (await rig.admin(`/api/v1/admin/jobs/${jobId}/weights`)).arrayBuffer());
  let h = 0;
  for (let i = 0; i < weights.length; i++) h = (Math.imul(h, 31) + weights[i]!) | 0;
  return JSON.stringify({ job, tasks: rig.coord.store.tasksOf(jobId), leases: rig.coord.store.leasesOf(jobId), weights: h });
}

beforeAll(async () => {
  rig = await makeRig({ normBoundPerExample: 100 });
  jobId = await startJob(rig, SMALL_JOB);
  a = await register('a');
  b = await register('b');
  const res = await rig.app.request(PATHS.lease, { method: 'POST', headers: { [WORKER_HEADER]: a.token }, body: JSON.stringify({ waitMs: 0 }) });
  const r = (await res.json()) as LeaseResponse;
  if (!r.lease) throw new Error('no lease');
  lease = r.lease;
  expect(lease.sample.count).toBeGreaterThan(0);
});

afterAll(async () => {
  await rig.close();
});

describe('bad uploads are refused with no state change', () => {
  const cases: [string, () => Promise<Response>, number, string][] = [
    ['no worker token', () => put(lease.leaseId, validBody(lease), null), 401, 'unauthorized'],
    ['unknown lease', () => put('no-such-lease', validBody(lease, { leaseId: 'no-such-lease' })), 404, 'unknown-lease'],
    ['foreign lease', () => put(lease.leaseId, validBody(lease), b.token), 403, 'foreign-lease'],
    ['wrong weights version', () => put(lease.leaseId, validBody(lease, { weightsVersion: lease.weights.version + 1 })), 409, 'stale-weights'],
    ['truncated body', () => put(lease.leaseId, validBody(lease).subarray(0, 5000)), 400, 'malformed-result'],
    ['malformed safetensors header', () => {
      const body = validBody(lease);
      body[12] = 0x7b; // '{' inside the JSON header
      body[13] = 0x7b;
      return put(lease.leaseId, body);
    }, 400, 'malformed-result'],
    ['header length past the end', () => {
      const body = validBody(lease);
      new DataView(body.buffer).setUint32(0, body.length, true);
      return put(lease.leaseId, body);
    }, 400, 'malformed-result'],
    ['not safetensors at all', () => put(lease.leaseId, new TextEncoder().encode('<html>oops</html>')), 400, 'malformed-result'],
    ['wrong shapes', () => {
      const g = zeros(lease);
      const [first] = g.keys();
      g.set(first!, new Float32Array(g.get(first!)!.length - 1));
      const shapes = new Map(tensorShapes(lease.config));
      shapes.set(first!, [g.get(first!)!.length]);
      return put(lease.leaseId, encodeResult({ taskId: lease.taskId, leaseId: lease.leaseId, weightsVersion: lease.weights.version, count: lease.sample.count, loss: 1, correct: 0 }, g, shapes));
    }, 422, 'shape-mismatch'],
    ['missing tensor', () => {
      const g = zeros(lease);
      g.delete([...g.keys()].pop()!);
      return put(lease.leaseId, validBody(lease, { grads: g }));
    }, 422, 'shape-mismatch'],
    ['NaN in a gradient', () => {
      const g = zeros(lease);
      g.values().next().value![17] = NaN;
      return put(lease.leaseId, validBody(lease, { grads: g }));
    }, 422, 'non-finite'],
    ['Inf in a gradient', () => {
      const g = zeros(lease);
      [...g.values()].pop()![0] = -Infinity;
      return put(lease.leaseId, validBody(lease, { grads: g }));
    }, 422, 'non-finite'],
    ['gradient norm over the bound', () => put(lease.leaseId, validBody(lease, { grads: zeros(lease, 1e3) })), 422, 'norm-bound'],
    ['example count differs from the sample', () => put(lease.leaseId, validBody(lease, { count: lease.sample.count + 1 })), 422, 'count-mismatch'],
    ['oversized body', () => {
      const big = new Uint8Array(rig.coord.maxResultBytes + 1);
      return put(lease.leaseId, big);
    }, 413, 'body-too-large'],
    ['an integer tensor where F32 belongs', () => {
      const shapes = tensorShapes(lease.config);
      const names = phaseTensors(lease.config, lease.phase);
      const entries = names.map((n, i) => {
        const len = shapes.get(n)!.reduce((x, y) => x * y, 1);
        return [n, { shape: shapes.get(n)!, data: i === names.length - 1 ? new Int32Array(len) : new Float32Array(len) }] as [string, { shape: number[]; data: Float32Array | Int32Array }];
      });
      const meta = { format: 'tessera-result', protocol: '1', taskId: lease.taskId, leaseId: lease.leaseId, weightsVersion: String(lease.weights.version), count: String(lease.sample.count), loss: '1', correct: '0' };
      return put(lease.leaseId, encodeSafetensors(entries, meta));
    }, 422, 'shape-mismatch'],
  ];

  for (const [name, send, status, code] of cases) {
    it(`${name}: ${status} ${code}`, async () => {
      const before = await snapshot();
      const res = await send();
      expect(res.status).toBe(status);
      const body = (await res.json()) as { error: string; detail: string };
      expect(body.error).toBe(code);
      expect(body.detail.length).toBeGreaterThan(10);
      expect(await snapshot()).toBe(before);
    });
  }

  it('a valid result is accepted once; its replay is 409 duplicate-result and changes nothing', async () => {
    const ok = await put(lease.leaseId, validBody(lease));
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ accepted: true, taskId: lease.taskId, covered: 1, of: SMALL_JOB.partitions });
    const before = await snapshot();
    const again = await put(lease.leaseId, validBody(lease));
    expect(again.status).toBe(409);
    expect(((await again.json()) as { error: string }).error).toBe('duplicate-result');
    expect(await snapshot()).toBe(before);
    expect(rig.coord.summary(jobId).rejectedResults).toBe(cases.length - 3 + 1); // 401, 404 and 413 never reach a lease; the replay counts
  });

  it('admin endpoints need the bearer token', async () => {
    expect((await rig.app.request('/api/v1/admin/jobs')).status).toBe(401);
    expect((await rig.app.request('/api/v1/admin/jobs', { headers: { Authorization: 'Bearer wrong' } })).status).toBe(401);
    expect((await rig.admin('/api/v1/admin/jobs')).status).toBe(200);
  });

  it('a malformed job config is 400 with every issue', async () => {
    const res = await rig.admin('/api/v1/admin/jobs', { method: 'POST', body: JSON.stringify({ layers: [3], seed: -1, bogus: 1 }) });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: string; detail: string };
    expect(body.error).toBe('bad-request');
    expect(body.detail).toMatch(/layers/);
    expect(body.detail).toMatch(/seed/);
    expect(body.detail).toMatch(/bogus/);
    const issues = (body as { issues?: { field: string; message: string }[] }).issues ?? [];
    expect(issues.map((i) => i.field).sort()).toEqual(['bogus', 'layers', 'seed']);
    expect(issues.every((i) => i.message.length > 5)).toBe(true);
  });

  it('a JSON body its schema refuses is 400 with the issues by field, and registers nothing', async () => {
    const issuesOf = async (path: string, body: unknown, token?: string): Promise<string[]> => {
      const headers: Record<string, string> = token ? { [WORKER_HEADER]: token } : {};
      const res = await rig.app.request(path, { method: 'POST', headers, body: JSON.stringify(body) });
      expect(res.status, JSON.stringify(body)).toBe(400);
      const b = (await res.json()) as { error: string; detail: string; issues: { field: string; message: string }[] };
      expect(b.error).toBe('bad-request');
      expect(b.detail).toMatch(/^invalid request body: /);
      return b.issues.map((i) => i.field).sort();
    };
    const workers = rig.coord.workers().length;
    expect(await issuesOf(PATHS.register, { name: '', runtime: 'jvm', backend: 'tpu' })).toEqual(['backend', 'name', 'runtime']);
    expect(await issuesOf(PATHS.register, { runtime: 'node', backend: 'cpu' })).toEqual(['name']);
    expect(await issuesOf(PATHS.register, { name: 'n', runtime: 'node', backend: 'cpu', cached: ['x'] })).toEqual(['cached']);
    expect(rig.coord.workers().length).toBe(workers);
    expect(await issuesOf(PATHS.heartbeat, { stats: {}, cached: 'abc' }, b.token)).toEqual(['cached']);
    expect(await issuesOf(PATHS.lease, { maxTasks: 0, cached: [1] }, b.token)).toEqual(['cached', 'maxTasks']);
  });

  it('blobs are immutable and revalidate with ETag', async () => {
    const res = await rig.app.request(PATHS.blob(lease.partition.hash));
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(res.headers.get('etag')).toBe(`"${lease.partition.hash}"`);
    expect((await res.arrayBuffer()).byteLength).toBe(lease.partition.bytes);
    const again = await rig.app.request(PATHS.blob(lease.partition.hash), { headers: { 'If-None-Match': `"${lease.partition.hash}"` } });
    expect(again.status).toBe(304);
    expect((await rig.app.request(PATHS.blob('0'.repeat(64)))).status).toBe(404);
    expect((await rig.app.request(PATHS.blob('nothex'))).status).toBe(400);
  });

  it('worker requests are rate-limited', async () => {
    const tight = await makeRig({}, undefined);
    const { createApp } = await import('../../coordinator/http/app.ts');
    const { sha256Hex } = await import('../../coordinator/auth.ts');
    const app = createApp(tight.coord, { adminTokenHash: sha256Hex('x'.repeat(20)), rateLimit: { perSecond: 1, burst: 3 } });
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) {
      statuses.push((await app.request(PATHS.register, { method: 'POST', body: JSON.stringify({ name: 'r', runtime: 'node', backend: 'cpu', adapter: '' }) })).status);
    }
    expect(statuses.slice(0, 3)).toEqual([201, 201, 201]);
    expect(statuses[4]).toBe(429);
    await tight.close();
  });

  it('a result for a held lease is taken even when the worker is over its rate limit', async () => {
    const tight = await makeRig({ normBoundPerExample: 100 });
    try {
      await startJob(tight, SMALL_JOB);
      const { createApp } = await import('../../coordinator/http/app.ts');
      const { sha256Hex } = await import('../../coordinator/auth.ts');
      const app = createApp(tight.coord, { adminTokenHash: sha256Hex('x'.repeat(20)), rateLimit: { perSecond: 0.01, burst: 1 } });
      const reg = (await (await app.request(PATHS.register, { method: 'POST', body: JSON.stringify({ name: 't', runtime: 'node', backend: 'cpu', adapter: '' }) })).json()) as RegisterResponse;
      const got = (await (await app.request(PATHS.lease, { method: 'POST', headers: { [WORKER_HEADER]: reg.token }, body: JSON.stringify({ waitMs: 0 }) })).json()) as LeaseResponse;
      const l = got.lease!;
      // the bucket is empty now: other requests are refused...
      const again = await app.request(PATHS.lease, { method: 'POST', headers: { [WORKER_HEADER]: reg.token }, body: JSON.stringify({ waitMs: 0 }) });
      expect(again.status).toBe(429);
      // ...but the finished work is taken
      const body = validBody(l);
      const res = await app.request(PATHS.result(l.leaseId), {
        method: 'PUT',
        headers: { [WORKER_HEADER]: reg.token, 'content-type': 'application/vnd.safetensors', 'content-length': String(body.length) },
        body: body as Uint8Array<ArrayBuffer>,
      });
      expect(res.status).toBe(200);
      expect(((await res.json()) as { accepted: boolean }).accepted).toBe(true);
    } finally {
      await tight.close();
    }
  });
});

describe('leasing', () => {
  it('prefers a worker that has the partition cached, and leaves cached partitions to their holders', async () => {
    const r = await makeRig();
    try {
      await startJob(r, SMALL_JOB);
      const reg = async (name: string, cached: string[] = []): Promise<RegisterResponse> =>
        (await (await r.app.request(PATHS.register, { method: 'POST', body: JSON.stringify({ name, runtime: 'node', backend: 'cpu', adapter: 'test', cached }) })).json()) as RegisterResponse;
      const lease = async (w: RegisterResponse, cached?: string[]): Promise<TaskLease> => {
        const res = await r.app.request(PATHS.lease, { method: 'POST', headers: { [WORKER_HEADER]: w.token }, body: JSON.stringify({ waitMs: 0, cached }) });
        return ((await res.json()) as { lease: TaskLease }).lease;
      };
      // Learn the partition hashes from a throwaway lease, then give it back.
      const probe = await reg('probe');
      const first = await lease(probe);
      await r.app.request(PATHS.returnLease(first.leaseId), { method: 'POST', headers: { [WORKER_HEADER]: probe.token } });
      const blob = await r.app.request(PATHS.blob(first.partition.hash));
      expect(blob.status).toBe(200);
      // The partitions are content-addressed: their hashes are those of core/protocol/partition.ts's encoding.
      const { encodePartition } = await import('../../core/protocol/partition.ts');
      const { partitionDataset } = await import('../../datasets/partition.ts');
      const { createHash } = await import('node:crypto');
      const { dataFor } = await import('./harness.ts');
      const parts = partitionDataset((await dataFor(SMALL_JOB)).train, SMALL_JOB.partitions);
      const hashes = parts.map((p) => createHash('sha256').update(encodePartition(p)).digest('hex'));
      expect(hashes).toContain(first.partition.hash);
      const holder = await reg('holder', [hashes[2]!]);
      const other = await reg('other');
      // "other" holds nothing: it is given a partition nobody caches, not partition 2.
      const o = await lease(other);
      expect(o.partition.index).not.toBe(2);
      // "holder" gets its cached partition.
      const h = await lease(holder);
      expect(h.partition.index).toBe(2);
      expect(h.partition.hash).toBe(hashes[2]);
    } finally {
      await r.close();
    }
  });
});

describe('intake', () => {
  it('a body that stalls is refused with 408 and frees its intake slot', async () => {
    const r = await makeRig({ uploadTimeoutMs: 200, maxConcurrentUploads: 1 });
    try {
      await startJob(r, SMALL_JOB);
      const w = (await (await r.app.request(PATHS.register, { method: 'POST', body: JSON.stringify({ name: 'slow', runtime: 'node', backend: 'cpu', adapter: '' }) })).json()) as RegisterResponse;
      const got = (await (await r.app.request(PATHS.lease, { method: 'POST', headers: { [WORKER_HEADER]: w.token }, body: '{"waitMs":0}' })).json()) as { lease: TaskLease };
      const l = got.lease;
      const stalled = new ReadableStream<Uint8Array>({
        start(ctl) {
          ctl.enqueue(new Uint8Array(16)); // then nothing more, never closed
        },
      });
      const res = await r.app.request(PATHS.result(l.leaseId), { method: 'PUT', headers: { [WORKER_HEADER]: w.token }, body: stalled, duplex: 'half' } as RequestInit);
      expect(res.status).toBe(408);
      expect(((await res.json()) as { error: string }).error).toBe('upload-timeout');
      // The single intake slot is free again: a valid upload goes through.
      const shapes = tensorShapes(l.config);
      const grads = new Map(phaseTensors(l.config, l.phase).map((n) => [n, new Float32Array(shapes.get(n)!.reduce((x, y) => x * y, 1))]));
      const body = encodeResult({ taskId: l.taskId, leaseId: l.leaseId, weightsVersion: l.weights.version, count: l.sample.count, loss: 0, correct: 0 }, grads, shapes);
      const ok = await r.app.request(PATHS.result(l.leaseId), { method: 'PUT', headers: { [WORKER_HEADER]: w.token, 'content-length': String(body.length) }, body: body as Uint8Array<ArrayBuffer> });
      expect(ok.status).toBe(200);
    } finally {
      await r.close();
    }
  });
});

describe('bundles: one result for several leases of an iteration', () => {
  let brig: Rig;
  let bJob: string;
  let x: RegisterResponse;
  let y: RegisterResponse;
  let mine: TaskLease[];
  let theirs: TaskLease;

  const leaseFor = async (w: RegisterResponse, maxTasks?: unknown): Promise<Response> =>
    brig.app.request(PATHS.lease, { method: 'POST', headers: { [WORKER_HEADER]: w.token }, body: JSON.stringify({ waitMs: 0, ...(maxTasks === undefined ? {} : { maxTasks }) }) });
  const bundleBody = (ls: TaskLease[], over: Partial<{ bundle: string[]; count: number }> = {}): Uint8Array =>
    encodeResult(
      {
        taskId: ls[0]!.taskId,
        leaseId: ls[0]!.leaseId,
        weightsVersion: ls[0]!.weights.version,
        count: over.count ?? ls.reduce((n, l) => n + l.sample.count, 0),
        loss: 2,
        correct: 0,
        bundle: over.bundle ?? ls.slice(1).map((l) => l.leaseId),
      },
      zeros(ls[0]!),
      tensorShapes(ls[0]!.config),
    );
  const send = (leaseId: string, body: Uint8Array, token = x.token): Promise<Response> =>
    Promise.resolve(brig.app.request(PATHS.result(leaseId), { method: 'PUT', headers: { [WORKER_HEADER]: token, 'content-length': String(body.length) }, body: body as Uint8Array<ArrayBuffer> }));
  const state = (): string => JSON.stringify({ s: brig.coord.summary(bJob).iteration, tasks: brig.coord.store.tasksOf(bJob), leases: brig.coord.store.leasesOf(bJob) });

  beforeAll(async () => {
    brig = await makeRig({ normBoundPerExample: 100 });
    bJob = await startJob(brig, SMALL_JOB);
    const reg = async (name: string): Promise<RegisterResponse> =>
      (await (await brig.app.request(PATHS.register, { method: 'POST', body: JSON.stringify({ name, runtime: 'node', backend: 'cpu', adapter: 'test' }) })).json()) as RegisterResponse;
    x = await reg('x');
    y = await reg('y');
    theirs = ((await (await leaseFor(y)).json()) as { lease: TaskLease }).lease;
    const r = (await (await leaseFor(x, 8)).json()) as { lease: TaskLease; more?: TaskLease[] };
    mine = [r.lease, ...(r.more ?? [])];
  });

  afterAll(async () => {
    await brig.close();
  });

  it('a lease request takes up to maxTasks of what is pending, each with the time of the whole bundle; a bad maxTasks is 400', async () => {
    expect(mine.length).toBe(SMALL_JOB.partitions - 1); // all that was left after y's one
    expect(new Set(mine.map((l) => l.taskId)).size).toBe(mine.length);
    expect(mine.every((l) => l.iteration === theirs.iteration && l.weights.hash === theirs.weights.hash)).toBe(true);
    expect(mine[0]!.timeoutMs).toBe(theirs.timeoutMs * mine.length);
    for (const bad of [0, 65, 1.5, '3', null]) {
      const res = await leaseFor(x, bad);
      expect(res.status, String(bad)).toBe(400);
      expect(((await res.json()) as { error: string }).error).toBe('bad-request');
    }
  });

  const cases: [string, () => Promise<Response>, number, string][] = [
    ['a lease named twice', () => send(mine[0]!.leaseId, bundleBody(mine, { bundle: [mine[1]!.leaseId, mine[1]!.leaseId] })), 400, 'malformed-result'],
    ['the upload\'s own lease in its bundle', () => send(mine[0]!.leaseId, bundleBody(mine, { bundle: [mine[0]!.leaseId] })), 400, 'malformed-result'],
    ['a lease never issued', () => send(mine[0]!.leaseId, bundleBody(mine, { bundle: ['0b5e0b5e-0000-4000-8000-000000000000'] })), 404, 'unknown-lease'],
    ['another worker\'s lease', () => send(mine[0]!.leaseId, bundleBody([...mine, theirs])), 403, 'foreign-lease'],
    ['the count of one task only', () => send(mine[0]!.leaseId, bundleBody(mine, { count: mine[0]!.sample.count })), 422, 'count-mismatch'],
    ['a bundle list that is not lease ids', () => send(mine[0]!.leaseId, bundleBody(mine, { bundle: ['a,b', 'c d'] })), 400, 'malformed-result'],
  ];
  for (const [name, go, status, code] of cases) {
    it(`${name}: ${status} ${code}, nothing changes`, async () => {
      const before = state();
      const res = await go();
      expect(res.status).toBe(status);
      expect(((await res.json()) as { error: string }).error).toBe(code);
      expect(state()).toBe(before);
    });
  }

  it('a valid bundle covers all its tasks at once; its replay is 409; the iteration completes with the last task', async () => {
    const ok = await send(mine[0]!.leaseId, bundleBody(mine));
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ accepted: true, covered: mine.length, of: SMALL_JOB.partitions });
    const leases = brig.coord.store.leasesOf(bJob);
    for (const l of mine) expect(leases.find((r) => r.id === l.leaseId)!.state).toBe('done');
    const again = await send(mine[0]!.leaseId, bundleBody(mine));
    expect(again.status).toBe(409);
    // a bundled lease cannot be answered again on its own either
    const alone = encodeResult({ taskId: mine[1]!.taskId, leaseId: mine[1]!.leaseId, weightsVersion: mine[1]!.weights.version, count: mine[1]!.sample.count, loss: 1, correct: 0 }, zeros(mine[1]!), tensorShapes(mine[1]!.config));
    expect((await send(mine[1]!.leaseId, alone)).status).toBe(409);
    const last = encodeResult({ taskId: theirs.taskId, leaseId: theirs.leaseId, weightsVersion: theirs.weights.version, count: theirs.sample.count, loss: 1, correct: 0 }, zeros(theirs), tensorShapes(theirs.config));
    const done = await send(theirs.leaseId, last, y.token);
    expect(done.status).toBe(200);
    expect(brig.coord.summary(bJob).iteration).toBe(theirs.iteration + 1);
  });

  it('workers waiting when an iteration starts share its tasks', async () => {
    const r2 = await makeRig({ normBoundPerExample: 100 });
    try {
      const job = await startJob(r2, SMALL_JOB);
      const reg = async (name: string): Promise<RegisterResponse> =>
        (await (await r2.app.request(PATHS.register, { method: 'POST', body: JSON.stringify({ name, runtime: 'node', backend: 'cpu', adapter: 'test' }) })).json()) as RegisterResponse;
      const ask = async (w: RegisterResponse, waitMs: number): Promise<TaskLease[]> => {
        const res = await r2.app.request(PATHS.lease, { method: 'POST', headers: { [WORKER_HEADER]: w.token }, body: JSON.stringify({ waitMs, maxTasks: 3 }) });
        const body = (await res.json()) as { lease: TaskLease | null; more?: TaskLease[] };
        return body.lease ? [body.lease, ...(body.more ?? [])] : [];
      };
      const [solo, p, q] = [await reg('solo'), await reg('p'), await reg('q')];
      const first = await ask(solo, 0);
      expect(first.length).toBe(SMALL_JOB.partitions); // alone: the whole iteration
      const waiting = [ask(p, 5_000), ask(q, 5_000)];
      await new Promise((ok) => setTimeout(ok, 50)); // both long-polls are in
      const body = encodeResult(
        { taskId: first[0]!.taskId, leaseId: first[0]!.leaseId, weightsVersion: first[0]!.weights.version, count: first.reduce((n, l) => n + l.sample.count, 0), loss: 1, correct: 0, bundle: first.slice(1).map((l) => l.leaseId) },
        zeros(first[0]!),
        tensorShapes(first[0]!.config),
      );
      const res = await r2.app.request(PATHS.result(first[0]!.leaseId), { method: 'PUT', headers: { [WORKER_HEADER]: solo.token, 'content-length': String(body.length) }, body: body as Uint8Array<ArrayBuffer> });
      expect(res.status).toBe(200);
      const [gp, gq] = await Promise.all(waiting);
      expect([gp.length, gq.length].sort()).toEqual([1, 2]);
      expect(new Set([...gp, ...gq].map((l) => l.taskId)).size).toBe(SMALL_JOB.partitions);
      expect([...gp, ...gq].every((l) => l.iteration === first[0]!.iteration + 1)).toBe(true);
      expect(r2.coord.summary(job).iteration).toBe(first[0]!.iteration + 1);
    } finally {
      await r2.close();
    }
  });
});
