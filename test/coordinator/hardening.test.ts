/**
 * Hardening (issue 10), through the public surface: app.request() (with a
 * client address given as the request's env, as @hono/node-server does), a
 * real socket where the bug needs one, the Coordinator's public methods and
 * the files in its data folder.
 *
 * 2. intake starvation: a lease is checked from the URL and headers before an
 *    upload slot is taken; slow bodies are bounded per worker and per address;
 * 3. lease hoarding: one long-poll per worker, the fair share counts workers,
 *    a worker's leases in flight are capped;
 * 4. registration flood: registrations are limited per address and per
 *    network prefix, workers that never leased anything are forgotten when
 *    silent, long-gone workers are purged, a worker's cached-hash set is bounded;
 * 5. configs checked against the data at creation, start and recovery; a job
 *    that cannot run goes to `failed` with the reason;
 * 7. checkpoint files are pruned from what is on disk, across restarts;
 * 8. reported metrics bounded by what is possible (422 out-of-range);
 * 9. a client that disconnects mid-body is not a 500 and logs no stack.
 */
import { serve, type ServerType } from '@hono/node-server';
import Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { parseJobConfig, type JobConfig } from '../../core/model/config.ts';
import { phaseTensors, tensorShapes } from '../../core/model/params.ts';
import { encodeResult, PATHS, WORKER_HEADER, type LeaseResponse, type RegisterResponse, type TaskLease } from '../../core/protocol/index.ts';
import type { Dataset } from '../../core/dataset.ts';
import { makeRig, SMALL_JOB, startJob, waitFor, type Rig } from './harness.ts';

type App = Rig['app'];

/** The env @hono/node-server gives a request from `address`. */
function from(address: string): { incoming: { socket: { remoteAddress: string } } } {
  return { incoming: { socket: { remoteAddress: address } } };
}

async function register(app: App, name: string, address?: string, cached?: string[]): Promise<Response> {
  const body = JSON.stringify({ name, runtime: 'node', backend: 'cpu', adapter: 'test', ...(cached ? { cached } : {}) });
  return await app.request(PATHS.register, { method: 'POST', body }, address ? from(address) : undefined);
}

async function registered(app: App, name: string, address?: string): Promise<RegisterResponse> {
  const res = await register(app, name, address);
  expect(res.status).toBe(201);
  return (await res.json()) as RegisterResponse;
}

async function askLease(app: App, w: RegisterResponse, body: { waitMs?: number; maxTasks?: number } = {}): Promise<LeaseResponse> {
  const res = await app.request(PATHS.lease, { method: 'POST', headers: { [WORKER_HEADER]: w.token }, body: JSON.stringify({ waitMs: 0, ...body }) });
  expect(res.status).toBe(200);
  return (await res.json()) as LeaseResponse;
}

function leasesOf(r: LeaseResponse): TaskLease[] {
  return r.lease ? [r.lease, ...(r.more ?? [])] : [];
}

function zeros(l: TaskLease): Map<string, Float32Array> {
  const shapes = tensorShapes(l.config);
  return new Map(phaseTensors(l.config, l.phase).map((n) => [n, new Float32Array(shapes.get(n)!.reduce((x, y) => x * y, 1))]));
}

/** One result for the leases (a bundle when there are several), zero gradients. */
function resultBody(ls: TaskLease[], over: Partial<{ loss: number; correct: number }> = {}): Uint8Array {
  const [l] = ls;
  return encodeResult(
    {
      taskId: l!.taskId,
      leaseId: l!.leaseId,
      weightsVersion: l!.weights.version,
      count: ls.reduce((n, x) => n + x.sample.count, 0),
      loss: over.loss ?? 0,
      correct: over.correct ?? 0,
      ...(ls.length > 1 ? { bundle: ls.slice(1).map((x) => x.leaseId) } : {}),
    },
    zeros(l!),
    tensorShapes(l!.config),
  );
}

async function upload(app: App, w: RegisterResponse, leaseId: string, body: Uint8Array, address?: string): Promise<Response> {
  return await app.request(
    PATHS.result(leaseId),
    { method: 'PUT', headers: { [WORKER_HEADER]: w.token, 'content-type': 'application/vnd.safetensors', 'content-length': String(body.length) }, body: body as Uint8Array<ArrayBuffer> },
    address ? from(address) : undefined,
  );
}

/** An upload whose body sends 16 bytes and then nothing (a sender at one byte per eternity); answered when the coordinator gives up on it. */
function stalledUpload(app: App, w: RegisterResponse, leaseId: string, address?: string): Promise<Response> {
  const body = new ReadableStream<Uint8Array>({
    start(ctl) {
      ctl.enqueue(new Uint8Array(16));
    },
  });
  return Promise.resolve(
    app.request(PATHS.result(leaseId), { method: 'PUT', headers: { [WORKER_HEADER]: w.token, 'content-type': 'application/vnd.safetensors' }, body, duplex: 'half' } as RequestInit, address ? from(address) : undefined),
  );
}

/** Resolves to the promise's value, or to 'pending' when it has not settled within ms. */
async function within<T>(p: Promise<T>, ms: number): Promise<T | 'pending'> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<'pending'>((r) => (timer = setTimeout(() => r('pending'), ms)));
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs n iterations: one worker leases every task of an iteration and answers them with one zero result. */
async function runIterations(rig: Rig, w: RegisterResponse, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const ls = leasesOf(await askLease(rig.app, w, { maxTasks: 64 }));
    expect(ls.length).toBeGreaterThan(0);
    const res = await upload(rig.app, w, ls[0]!.leaseId, resultBody(ls));
    expect(res.status, await res.clone().text()).toBe(200);
  }
}

const rigs: Rig[] = [];
const folders: string[] = [];
async function rigFor(opts: Parameters<typeof makeRig>[0] = {}, dir?: string): Promise<Rig> {
  const r = await makeRig(opts, dir);
  rigs.push(r);
  return r;
}
function folder(): string {
  const d = mkdtempSync(join(tmpdir(), 'tessera-harden-'));
  folders.push(d);
  return d;
}
afterEach(async () => {
  for (const r of rigs.splice(0)) await r.close().catch(() => undefined);
  for (const d of folders.splice(0)) rmSync(d, { recursive: true, force: true });
});

// ------------------------------------------------------------------ 2

describe('intake: a lease is checked before an upload slot is taken (item 2)', () => {
  it('uploads to made-up leases are refused at once without holding a slot; an honest result lands at once', async () => {
    const rig = await rigFor({ maxConcurrentUploads: 2, uploadTimeoutMs: 4_000 });
    await startJob(rig, SMALL_JOB);
    const attacker = await registered(rig.app, 'attacker');
    const honest = await registered(rig.app, 'honest');
    const [mine] = leasesOf(await askLease(rig.app, honest));
    // Four slow bodies to lease ids never issued, and one to the honest worker's lease.
    const forged = [0, 1, 2, 3].map(() => stalledUpload(rig.app, attacker, randomUUID()));
    const foreign = stalledUpload(rig.app, attacker, mine!.leaseId);
    const answers = await Promise.all(forged.map((p) => within(p, 1_000)));
    for (const a of answers) {
      expect(a).not.toBe('pending');
      expect((a as Response).status).toBe(404);
      expect(((await (a as Response).json()) as { error: string }).error).toBe('unknown-lease');
    }
    const f = await within(foreign, 1_000);
    expect(f).not.toBe('pending');
    expect((f as Response).status).toBe(403);
    const t0 = Date.now();
    const ok = await upload(rig.app, honest, mine!.leaseId, resultBody([mine!]));
    expect(ok.status).toBe(200);
    expect(Date.now() - t0).toBeLessThan(1_500);
  });

  it('one worker reads one body at a time: its slow uploads do not hold every slot', async () => {
    const rig = await rigFor({ maxConcurrentUploads: 2, uploadTimeoutMs: 4_000 });
    await startJob(rig, SMALL_JOB);
    // (from two addresses, so that only the bound per worker is at work)
    const slow = await registered(rig.app, 'slow', '198.51.100.1');
    const other = await registered(rig.app, 'other', '203.0.113.1');
    const held = [...leasesOf(await askLease(rig.app, slow)), ...leasesOf(await askLease(rig.app, slow))];
    expect(held.length).toBe(2);
    const [theirs] = leasesOf(await askLease(rig.app, other));
    const stalled = held.map((l) => stalledUpload(rig.app, slow, l.leaseId, '198.51.100.1'));
    await new Promise((r) => setTimeout(r, 100)); // both slow bodies are in
    const t0 = Date.now();
    const ok = await within(upload(rig.app, other, theirs!.leaseId, resultBody([theirs!]), '203.0.113.1'), 2_000);
    expect(ok).not.toBe('pending');
    expect((ok as Response).status).toBe(200);
    expect(Date.now() - t0).toBeLessThan(2_000);
    for (const s of stalled) expect([408, 410]).toContain((await s).status);
  });

  it('one address reads a bounded number of bodies at once: its slow uploads do not hold every slot', async () => {
    const rig = await rigFor({ maxConcurrentUploads: 2, uploadTimeoutMs: 4_000 });
    await startJob(rig, SMALL_JOB);
    const a1 = await registered(rig.app, 'a1', '198.51.100.7');
    const a2 = await registered(rig.app, 'a2', '198.51.100.7');
    const b = await registered(rig.app, 'b', '203.0.113.9');
    const [l1] = leasesOf(await askLease(rig.app, a1));
    const [l2] = leasesOf(await askLease(rig.app, a2));
    const [lb] = leasesOf(await askLease(rig.app, b));
    const stalled = [stalledUpload(rig.app, a1, l1!.leaseId, '198.51.100.7'), stalledUpload(rig.app, a2, l2!.leaseId, '198.51.100.7')];
    await new Promise((r) => setTimeout(r, 100));
    const ok = await within(upload(rig.app, b, lb!.leaseId, resultBody([lb!]), '203.0.113.9'), 2_000);
    expect(ok).not.toBe('pending');
    expect((ok as Response).status).toBe(200);
    for (const s of stalled) expect([408, 410]).toContain((await s).status);
  });
});

// ------------------------------------------------------------------ 3

describe('leasing: workers, not requests, share an iteration (item 3)', () => {
  it('a second long-poll of a worker ends its first; a worker with many long-polls gets its share, not every task', async () => {
    const rig = await rigFor();
    await startJob(rig, SMALL_JOB);
    const solo = await registered(rig.app, 'solo');
    const hoarder = await registered(rig.app, 'hoarder');
    const honest = await registered(rig.app, 'honest');
    const first = leasesOf(await askLease(rig.app, solo, { maxTasks: 3 }));
    expect(first.length).toBe(SMALL_JOB.partitions); // every task of iteration 0 is out
    const polls = Array.from({ length: 10 }, () => askLease(rig.app, hoarder, { waitMs: 5_000 }));
    await new Promise((r) => setTimeout(r, 50));
    const fair = askLease(rig.app, honest, { waitMs: 5_000 });
    await new Promise((r) => setTimeout(r, 50));
    // The hoarder's first nine long-polls were ended by the ones after them, empty.
    const early = await Promise.all(polls.slice(0, 9).map((p) => within(p, 500)));
    for (const e of early) {
      expect(e).not.toBe('pending');
      expect((e as LeaseResponse).lease).toBeNull();
    }
    // Iteration 1 starts: its tasks go to the two waiting workers, not all to the hoarder.
    const done = await upload(rig.app, solo, first[0]!.leaseId, resultBody(first));
    expect(done.status).toBe(200);
    const hoarded = leasesOf(await polls[9]!);
    const got = leasesOf(await fair);
    expect(got.length).toBe(1);
    expect(got[0]!.iteration).toBe(1);
    expect(hoarded.length).toBe(1);
  });

  it('a worker holds at most maxLeasesPerWorker leases at once', async () => {
    const rig = await rigFor({ maxLeasesPerWorker: 2 } as Parameters<typeof makeRig>[0]);
    await startJob(rig, SMALL_JOB);
    const w = await registered(rig.app, 'greedy');
    const got = leasesOf(await askLease(rig.app, w, { maxTasks: 3 }));
    expect(got.length).toBe(2);
    const again = await askLease(rig.app, w, { maxTasks: 1 });
    expect(again.lease).toBeNull();
    // another worker still finds the third task
    const other = await registered(rig.app, 'other');
    expect(leasesOf(await askLease(rig.app, other)).length).toBe(1);
  });
});

// ------------------------------------------------------------------ 4

describe('registration flood (item 4)', () => {
  it('registrations are limited per address at a human rate, and per network prefix: 127.0.0.0/8, an IPv4 /24, an IPv6 /64', async () => {
    const rig = await rigFor();
    let n = 0;
    let refused: Response | null = null;
    for (; n < 500; n++) {
      const res = await register(rig.app, `flood-${n}`, '127.0.0.1');
      if (res.status === 429) {
        refused = res;
        break;
      }
      expect(res.status).toBe(201);
    }
    expect(refused).not.toBeNull();
    expect(n).toBeGreaterThanOrEqual(8); // a few local workers at once are fine
    expect(n).toBeLessThanOrEqual(64);
    expect(((await refused!.json()) as { error: string }).error).toBe('rate-limited');
    expect(Number(refused!.headers.get('retry-after'))).toBeGreaterThan(0);
    // Other loopback addresses are the same network: no fresh bucket each.
    let more = 0;
    for (let k = 2; k < 250; k++) {
      const res = await register(rig.app, `loopback-${k}`, k % 2 ? `::ffff:127.0.0.${k}` : `127.0.${k}.1`);
      if (res.status === 429) break;
      expect(res.status).toBe(201);
      more++;
    }
    expect(n + more).toBeLessThanOrEqual(64);
    // A /24: one registration from each of many addresses runs into the prefix's limit.
    let m = 0;
    for (; m < 250; m++) {
      const res = await register(rig.app, `net-${m}`, `192.0.2.${m + 1}`);
      if (res.status === 429) break;
      expect(res.status).toBe(201);
    }
    expect(m).toBeLessThanOrEqual(64);
    expect((await register(rig.app, 'next-net', '192.0.3.1')).status).toBe(201);
    // A /64 likewise.
    let k = 0;
    for (; k < 250; k++) {
      const res = await register(rig.app, `v6-${k}`, `2001:db8:0:7::${(k + 1).toString(16)}`);
      if (res.status === 429) break;
      expect(res.status).toBe(201);
    }
    expect(k).toBeLessThanOrEqual(64);
    expect((await register(rig.app, 'next-v6', '2001:db8:0:8::1')).status).toBe(201);
  });

  it('workers that never leased anything are forgotten once silent; one that did stays listed as lost', async () => {
    const dir = folder();
    const rig = await rigFor({ heartbeatMs: 50, workerTimeoutMs: 200, leaseTimeoutMs: 100 }, dir);
    await startJob(rig, SMALL_JOB);
    const idle = await Promise.all([0, 1, 2, 3, 4].map((i) => registered(rig.app, `idle-${i}`)));
    const worked = await registered(rig.app, 'worked');
    expect(leasesOf(await askLease(rig.app, worked)).length).toBe(1);
    await waitFor(() => rig.coord.workers().every((w) => w.state !== 'active'), 5_000, 'every worker to be silent');
    await new Promise((r) => setTimeout(r, 300));
    const listed = ((await (await rig.admin(PATHS.admin.workers)).json()) as { workers: { id: string; state: string }[] }).workers;
    expect(listed.map((w) => [w.id, w.state])).toEqual([[worked.workerId, 'lost']]);
    const db = new Database(join(dir, 'state.sqlite'), { readonly: true });
    try {
      expect((db.prepare('SELECT id FROM workers').all() as { id: string }[]).map((r) => r.id)).toEqual([worked.workerId]);
    } finally {
      db.close();
    }
    // A forgotten worker's token is unknown now: it registers again.
    const res = await rig.app.request(PATHS.heartbeat, { method: 'POST', headers: { [WORKER_HEADER]: idle[0]!.token }, body: '{"stats":{}}' });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: string }).error).toBe('unauthorized');
  });

  it('workers gone (left or lost) longer than the retention are purged from memory and the database', async () => {
    const dir = folder();
    const rig = await rigFor({ heartbeatMs: 50, workerTimeoutMs: 200, leaseTimeoutMs: 100, workerRetentionMs: 400 } as Parameters<typeof makeRig>[0], dir);
    await startJob(rig, SMALL_JOB);
    const lost = await registered(rig.app, 'lost');
    const left = await registered(rig.app, 'left');
    expect(leasesOf(await askLease(rig.app, lost)).length).toBe(1);
    expect(leasesOf(await askLease(rig.app, left)).length).toBe(1);
    expect((await rig.app.request(PATHS.leave, { method: 'POST', headers: { [WORKER_HEADER]: left.token } })).status).toBe(200);
    await waitFor(() => rig.coord.workers().find((w) => w.id === lost.workerId)?.state === 'lost', 5_000, 'the silent worker to be lost');
    await waitFor(() => rig.coord.workers().length === 0, 5_000, 'both gone workers to be purged');
    const db = new Database(join(dir, 'state.sqlite'), { readonly: true });
    try {
      expect(db.prepare('SELECT COUNT(*) AS n FROM workers').get()).toEqual({ n: 0 });
    } finally {
      db.close();
    }
  });

  it('a worker\'s cached-hash list costs bounded memory', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const rig = await rigFor();
    // As many distinct hashes as a registration body can carry.
    const hashes = Array.from({ length: 900 }, (_, i) => i.toString(16).padStart(64, '0'));
    for (let i = 0; i < 20; i++) expect((await register(rig.app, `warm-${i}`, `10.${i}.0.1`, hashes)).status).toBe(201);
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 200; i++) {
      const res = await register(rig.app, `m-${i}`, `10.${100 + (i >> 8)}.${i & 255}.1`, hashes);
      expect(res.status).toBe(201);
    }
    gc();
    const grown = process.memoryUsage().heapUsed - before;
    // Kept whole, 200 x 900 hashes hold about 20 MB.
    expect(grown).toBeLessThan(6 * 1024 * 1024);
  });
});

// ------------------------------------------------------------------ 5

/** MNIST-shaped data of another image size (14 x 14): the data a job config may not fit. */
function smallImages(count: number): Dataset {
  const labels = new Uint8Array(count).map((_, i) => i % 10);
  return { images: new Uint8Array(count * 196).fill(7), labels, count, rows: 14, cols: 14, dim: 196 };
}

describe('configs are checked against the data (item 5)', () => {
  it('a job whose input layer is not the pixel count, or whose output layer is not the class count, is refused at creation', async () => {
    const rig = await rigFor();
    for (const [layers, says] of [[[100, 10, 10], /784/], [[784, 64, 2], /10 classes/]] as const) {
      const res = await rig.admin('/api/v1/admin/jobs', { method: 'POST', body: JSON.stringify({ ...SMALL_JOB, layers }) });
      expect(res.status).toBe(400);
      const body = (await res.json()) as { error: string; detail: string };
      expect(body.error).toBe('bad-request');
      expect(body.detail).toMatch(/layers/);
      expect(body.detail).toMatch(says);
    }
    expect(rig.coord.jobs()).toEqual([]);
  });

  it('at start: a created job that does not fit the data now is refused with 409 and stays created', async () => {
    const dir = folder();
    const a = await rigFor({}, dir);
    const res = await a.admin('/api/v1/admin/jobs', { method: 'POST', body: JSON.stringify(SMALL_JOB) });
    expect(res.status).toBe(201);
    const { id } = (await res.json()) as { id: string };
    await a.close();
    const b = await rigFor({ loadData: async () => ({ train: smallImages(600), test: smallImages(100) }) }, dir);
    const st = await b.admin(`/api/v1/admin/jobs/${id}/start`, { method: 'POST' });
    expect(st.status).toBe(409);
    const body = (await st.json()) as { error: string; detail: string };
    expect(body.error).toBe('conflict');
    expect(body.detail).toMatch(/196/);
    expect(b.coord.summary(id).state).toBe('created');
  });

  it('at recovery: a running job that does not fit the data any more goes to failed with the reason; the coordinator serves on', async () => {
    const dir = folder();
    const a = await rigFor({}, dir);
    const id = await startJob(a, SMALL_JOB);
    await a.close();
    const b = await rigFor({ loadData: async () => ({ train: smallImages(600), test: smallImages(100) }) }, dir);
    const s = b.coord.summary(id);
    expect(s.state).toBe('failed');
    expect(s.error).toMatch(/784/);
    expect(s.error).toMatch(/196/);
    expect(s.finishedAt).not.toBeNull();
    const status = (await (await b.app.request(PATHS.status)).json()) as { job: unknown };
    expect(status.job).toBeNull();
    // another job can run
    const job2 = parseJobConfig({ ...SMALL_JOB, layers: [196, 8, 10] });
    const c = await b.admin('/api/v1/admin/jobs', { method: 'POST', body: JSON.stringify(job2) });
    expect(c.status).toBe(201);
  });
});

// ------------------------------------------------------------------ 7

describe('checkpoint files (item 7)', () => {
  it('restarts leave no checkpoint files behind: pruning goes by what is on disk', async () => {
    const dir = folder();
    const job: JobConfig = parseJobConfig({ ...SMALL_JOB, checkpointEvery: 2 });
    let rig = await rigFor({}, dir);
    const id = await startJob(rig, job);
    for (let restart = 0; restart < 5; restart++) {
      const w = await registered(rig.app, `w${restart}`);
      await runIterations(rig, w, 3); // at least one checkpoint each time
      await rig.coord.idle();
      await rig.close();
      rig = await rigFor({}, dir);
    }
    const files = readdirSync(join(dir, 'jobs', id)).filter((f) => f.endsWith('.safetensors'));
    expect(files.length).toBeLessThanOrEqual(2);
    expect(files).toContain(`checkpoint-${String(rig.coord.summary(id).checkpointIteration).padStart(8, '0')}.safetensors`);
  });
});

// ------------------------------------------------------------------ 8

describe('reported metrics are bounded by what is possible (item 8)', () => {
  async function leaseAll(rig: Rig, cfg: JobConfig): Promise<{ w: RegisterResponse; ls: TaskLease[]; id: string }> {
    const id = await startJob(rig, cfg);
    const w = await registered(rig.app, 'reporter');
    return { w, ls: leasesOf(await askLease(rig.app, w, { maxTasks: 64 })), id };
  }
  const state = (rig: Rig, id: string): string => JSON.stringify({ tasks: rig.coord.store.tasksOf(id), leases: rig.coord.store.leasesOf(id), it: rig.coord.summary(id).iteration });

  it('pre-training: a reconstruction error over (visible units x examples) is 422 out-of-range; a possible one is taken', async () => {
    const rig = await rigFor();
    const { w, ls, id } = await leaseAll(rig, SMALL_JOB);
    const count = ls.reduce((n, l) => n + l.sample.count, 0);
    for (const loss of [784 * count * 1.01, 1e308]) {
      const before = state(rig, id);
      const res = await upload(rig.app, w, ls[0]!.leaseId, resultBody(ls, { loss }));
      expect(res.status).toBe(422);
      const body = (await res.json()) as { error: string; detail: string };
      expect(body.error).toBe('out-of-range');
      expect(body.detail).toMatch(/loss/);
      expect(state(rig, id)).toBe(before);
    }
    expect((await upload(rig.app, w, ls[0]!.leaseId, resultBody(ls, { loss: 100 * count }))).status).toBe(200);
  });

  it('fine-tuning: a cross-entropy no softmax of these weights can reach is 422 out-of-range, and the admin page never sees it', async () => {
    const rig = await rigFor();
    const cfg = parseJobConfig({ ...SMALL_JOB, pretrain: { epochs: 0 } });
    const { w, ls, id } = await leaseAll(rig, cfg);
    expect(ls[0]!.phase.kind).toBe('finetune');
    const count = ls.reduce((n, l) => n + l.sample.count, 0);
    for (const loss of [1e308, 1e4 * count]) {
      const before = state(rig, id);
      const res = await upload(rig.app, w, ls[0]!.leaseId, resultBody(ls, { loss }));
      expect(res.status).toBe(422);
      expect(((await res.json()) as { error: string }).error).toBe('out-of-range');
      expect(state(rig, id)).toBe(before);
    }
    // ln 10 per example is what freshly initialised weights give
    expect((await upload(rig.app, w, ls[0]!.leaseId, resultBody(ls, { loss: Math.log(10) * count, correct: Math.floor(count / 10) }))).status).toBe(200);
    const m = rig.coord.metrics(id).iterations;
    expect(m[0]!.loss).toBeCloseTo(Math.log(10), 5);
  });
});

// ------------------------------------------------------------------ 9

describe('a client that disconnects mid-body (item 9)', () => {
  it('is not a 500 and logs no stack trace; the coordinator keeps serving and the slot is free', async () => {
    const rig = await rigFor({ maxConcurrentUploads: 1 });
    await startJob(rig, SMALL_JOB);
    const server = await new Promise<ServerType>((ok) => {
      const s = serve({ fetch: rig.app.fetch, port: 0, hostname: '127.0.0.1' }, () => ok(s));
    });
    const errors = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      const port = (server.address() as AddressInfo).port;
      const base = `http://127.0.0.1:${port}`;
      const w = (await (await fetch(base + PATHS.register, { method: 'POST', body: JSON.stringify({ name: 'quitter', runtime: 'node', backend: 'cpu', adapter: '' }) })).json()) as RegisterResponse;
      const l = ((await (await fetch(base + PATHS.lease, { method: 'POST', headers: { [WORKER_HEADER]: w.token }, body: '{"waitMs":0}' })).json()) as { lease: TaskLease }).lease;
      const body = Buffer.from(resultBody([l]));
      const abort = (head: string, part: Buffer): Promise<string> =>
        new Promise((resolve) => {
          const sock = connect(port, '127.0.0.1');
          let got = '';
          sock.on('data', (d) => (got += d.toString('latin1')));
          sock.on('error', () => undefined);
          sock.on('close', () => resolve(got));
          sock.on('connect', () => {
            sock.write(head);
            sock.write(part, () => setTimeout(() => sock.destroy(), 100));
          });
        });
      // A result upload cut off half way, then a JSON body cut off.
      await abort(`PUT ${PATHS.result(l.leaseId)} HTTP/1.1\r\nHost: x\r\n${WORKER_HEADER}: ${w.token}\r\nContent-Type: application/vnd.safetensors\r\nContent-Length: ${body.length}\r\n\r\n`, body.subarray(0, body.length >> 1));
      await abort(`POST ${PATHS.heartbeat} HTTP/1.1\r\nHost: x\r\n${WORKER_HEADER}: ${w.token}\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n`, Buffer.from('{"stats":{"tasksDone":'));
      await new Promise((r) => setTimeout(r, 300));
      expect(errors).not.toHaveBeenCalled();
      expect(rig.coord.perf.results).toBe(0);
      // the one slot is free: the whole upload lands
      const ok = await fetch(base + PATHS.result(l.leaseId), { method: 'PUT', headers: { [WORKER_HEADER]: w.token, 'content-type': 'application/vnd.safetensors' }, body });
      expect(ok.status).toBe(200);
    } finally {
      errors.mockRestore();
      await new Promise((ok) => server.close(ok));
    }
  });
});

