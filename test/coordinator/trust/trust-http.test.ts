/**
 * Trust through the HTTP API: a worker whose results fail their checks is
 * banned; its token then gets 403 banned and changes nothing; a worker that
 * registers again from the same source starts untrusted with the source's
 * strikes (banned at its first failure); an admin lifts a ban.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { phaseTensors, tensorShapes } from '../../../core/model/params.ts';
import { encodeResult, PATHS, WORKER_HEADER, type LeaseResponse, type RegisterResponse, type TaskLease } from '../../../core/protocol/index.ts';
import { makeRig, SMALL_JOB, startJob, waitFor, type Rig } from '../harness.ts';

let rig: Rig;
let jobId: string;

beforeAll(async () => {
  rig = await makeRig();
  jobId = await startJob(rig, SMALL_JOB);
});
afterAll(async () => {
  await rig.close();
});

/** app.request from a client address (what the socket would carry). */
function from(address: string) {
  const env = { incoming: { socket: { remoteAddress: address } } };
  return (path: string, init: RequestInit = {}) => Promise.resolve(rig.app.request(path, init, env));
}

async function register(address: string, name: string): Promise<RegisterResponse> {
  const res = await from(address)(PATHS.register, { method: 'POST', body: JSON.stringify({ name, runtime: 'node', backend: 'cpu', adapter: 'test' }) });
  expect(res.status).toBe(201);
  return (await res.json()) as RegisterResponse;
}

async function lease(address: string, w: RegisterResponse): Promise<Response> {
  return await from(address)(PATHS.lease, { method: 'POST', headers: { [WORKER_HEADER]: w.token }, body: JSON.stringify({ waitMs: 0 }) });
}

/** A protocol-perfect wrong result: right shapes, count and metadata, gradients all 0.5. */
function wrongResult(l: TaskLease): Uint8Array {
  const shapes = tensorShapes(l.config);
  const grads = new Map(phaseTensors(l.config, l.phase).map((n) => [n, new Float32Array(shapes.get(n)!.reduce((x, y) => x * y, 1)).fill(0.5)]));
  return encodeResult({ taskId: l.taskId, leaseId: l.leaseId, weightsVersion: l.weights.version, count: l.sample.count, loss: 1.5, correct: 0 }, grads, shapes);
}

async function cheatOnce(address: string, w: RegisterResponse): Promise<void> {
  const res = await lease(address, w);
  expect(res.status).toBe(200);
  const l = ((await res.json()) as LeaseResponse).lease!;
  const body = wrongResult(l);
  const put = await from(address)(PATHS.result(l.leaseId), { method: 'PUT', headers: { [WORKER_HEADER]: w.token, 'content-length': String(body.length) }, body: body as Uint8Array<ArrayBuffer> });
  expect(put.status).toBe(200); // it passes intake: only recomputation tells
}

function trustOf(id: string) {
  return rig.coord.workers().find((w) => w.id === id)!.trust!;
}

describe('trust through the API', () => {
  let cheat: RegisterResponse;

  it('a new worker is checked on every result; failing two checks bans it', async () => {
    cheat = await register('198.51.100.7', 'cheat');
    expect(trustOf(cheat.workerId)).toMatchObject({ source: '198.51.100.0/24', checked: 0, banned: false, checkProbability: 1 });
    await cheatOnce('198.51.100.7', cheat);
    await waitFor(() => trustOf(cheat.workerId).failed === 1, 10_000, 'the first check');
    expect(trustOf(cheat.workerId)).toMatchObject({ checked: 1, agreed: 0, consecutive: 0, marked: true, banned: false });
    // its result was discarded: the task is pending again, and never offered to it again
    const discarded = rig.coord.store.leasesOf(jobId).filter((l) => l.worker_id === cheat.workerId);
    expect(discarded.map((l) => l.state)).toEqual(['discarded']);
    await cheatOnce('198.51.100.7', cheat);
    await waitFor(() => trustOf(cheat.workerId).banned, 10_000, 'the ban');
    const t = trustOf(cheat.workerId);
    expect(t).toMatchObject({ checked: 2, failed: 2, banned: true });
    expect(t.banReason).toMatch(/failed 2 checks/);
    const leases = rig.coord.store.leasesOf(jobId).filter((l) => l.worker_id === cheat.workerId);
    expect(new Set(leases.map((l) => l.task_id)).size).toBe(2);
    expect(leases.every((l) => l.state === 'discarded')).toBe(true);
    expect(rig.coord.summary(jobId).trust).toMatchObject({ verification: 'verified', checks: 2, failures: 2 });
  });

  it("a banned worker's requests get 403 banned and change nothing", async () => {
    const before = JSON.stringify({ workers: rig.coord.workers(), job: rig.coord.summary(jobId), leases: rig.coord.store.leasesOf(jobId) });
    const send = from('198.51.100.7');
    const h = { [WORKER_HEADER]: cheat.token };
    for (const [path, init] of [
      [PATHS.lease, { method: 'POST', headers: h, body: JSON.stringify({ waitMs: 0 }) }],
      [PATHS.heartbeat, { method: 'POST', headers: h, body: JSON.stringify({ stats: { tasksDone: 99, examplesDone: 0, examplesPerSecond: 5, bytesUp: 0, bytesDown: 0 } }) }],
      [PATHS.result('00000000-0000-0000-0000-000000000000'), { method: 'PUT', headers: { ...h, 'content-length': '4' }, body: new Uint8Array(4) }],
      [PATHS.leave, { method: 'POST', headers: h }],
    ] as const) {
      const res = await send(path, init as RequestInit);
      expect(res.status, path).toBe(403);
      expect(await res.json()).toMatchObject({ error: 'banned' });
    }
    expect(JSON.stringify({ workers: rig.coord.workers(), job: rig.coord.summary(jobId), leases: rig.coord.store.leasesOf(jobId) })).toBe(before);
  });

  it('a re-registration from the same source starts untrusted with its strikes and is banned at its first failure', async () => {
    const again = await register('198.51.100.200', 'cheat-again');
    expect(trustOf(again.workerId)).toMatchObject({ source: '198.51.100.0/24', inherited: 2, marked: true, banned: false, checkProbability: 1 });
    const other = await register('203.0.113.5', 'elsewhere');
    expect(trustOf(other.workerId)).toMatchObject({ inherited: 0, marked: false });
    await cheatOnce('198.51.100.200', again);
    await waitFor(() => trustOf(again.workerId).banned, 10_000, 'the ban of the re-registered worker');
    expect(trustOf(again.workerId).failed).toBe(1);
  });

  it('an admin sees the records, lifts a ban (the worker is on probation again) and bans by hand', async () => {
    const rows = (await (await rig.admin(PATHS.admin.workers)).json()) as { workers: { id: string; trust: { banned: boolean } }[] };
    expect(rows.workers.find((w) => w.id === cheat.workerId)!.trust.banned).toBe(true);
    const lifted = await rig.admin(PATHS.admin.unban(cheat.workerId), { method: 'POST' });
    expect(lifted.status).toBe(200);
    expect(((await lifted.json()) as { trust: unknown }).trust).toMatchObject({ banned: false, failed: 0, consecutive: 0, checkProbability: 1 });
    expect((await lease('198.51.100.7', cheat)).status).toBe(200);
    const banned = await rig.admin(PATHS.admin.ban(cheat.workerId), { method: 'POST' });
    expect(((await banned.json()) as { trust: unknown }).trust).toMatchObject({ banned: true, banReason: 'banned by the admin' });
    expect((await lease('198.51.100.7', cheat)).status).toBe(403);
    const missing = await rig.admin(PATHS.admin.ban('w-nobody'), { method: 'POST' });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ error: 'not-found' });
    expect((await rig.app.request(PATHS.admin.unban(cheat.workerId), { method: 'POST' })).status).toBe(401);
  });

  it('a ban and its record survive a restart of the coordinator on the same folder', async () => {
    // (the previous test left the cheat banned by hand, and its /24 with strikes)
    const before = trustOf(cheat.workerId);
    expect(before.banned).toBe(true);
    const dir = rig.dir;
    await rig.coord.close();
    rig = await makeRig({}, dir);
    expect(trustOf(cheat.workerId)).toMatchObject({ banned: true, banReason: 'banned by the admin', checked: before.checked, failed: before.failed, source: '198.51.100.0/24' });
    const res = await lease('198.51.100.7', cheat);
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ error: 'banned' });
  });
});
