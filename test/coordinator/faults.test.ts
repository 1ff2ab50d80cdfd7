/**
 * Faults with in-process workers: a slow worker whose lease passes its
 * deadline (its late result is dropped and counted; the task is re-issued and
 * counted once), a worker that vanishes mid-task (its lease expires when it
 * stops heartbeating), a worker that stops and gives its lease back.
 */
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PATHS, WORKER_HEADER } from '../../core/protocol/index.ts';
import type { WorkerEvent } from '../../client/worker/worker.ts';
import { inProcessWorker, ledgerCountsEachTaskOnce, makeRig, SMALL_JOB, startJob, waitFor, type Rig } from './harness.ts';

describe('faults', () => {
  let rig: Rig | undefined;
  afterEach(async () => {
    await rig?.close();
    rig = undefined;
  });

  it('a slow worker past its deadline: its late result is dropped (410), the task re-issued and counted once', async () => {
    rig = await makeRig({ leaseTimeoutMs: 300 });
    const id = await startJob(rig, SMALL_JOB);
    const slowEvents: WorkerEvent[] = [];
    let delayed = 0;
    const slow = await inProcessWorker(rig, 'slow', {
      maxTasks: 1,
      beforeUpload: async () => {
        if (delayed++ === 0) await new Promise((r) => setTimeout(r, 900));
      },
    }, slowEvents);
    const slowRun = slow.start();
    await waitFor(() => slowEvents.some((e) => e.type === 'task'), 5000, 'the slow worker to hold a lease');
    const fast = await inProcessWorker(rig, 'fast');
    await fast.start();
    await slowRun; // its late upload is refused; it then finds the job done and leaves
    await rig.coord.idle();
    const s = rig.coord.summary(id);
    expect(s.state).toBe('done');
    const rejected = slowEvents.find((e) => e.type === 'rejected');
    expect(rejected).toMatchObject({ type: 'rejected', status: 410, error: { error: 'lease-expired' } });
    expect(s.lateResults).toBeGreaterThanOrEqual(1);
    const slowTask = (slowEvents.find((e) => e.type === 'task') as Extract<WorkerEvent, { type: 'task' }>).lease;
    const leases = rig.coord.store.leasesOf(id).filter((l) => l.task_id === slowTask.taskId);
    expect(leases.map((l) => l.state).sort()).toEqual(['done', 'expired']);
    ledgerCountsEachTaskOnce(rig, id);
  });

  it('a worker that vanishes mid-task: its lease expires when it goes silent, and the job completes', async () => {
    rig = await makeRig({ leaseTimeoutMs: 60_000, heartbeatMs: 100, workerTimeoutMs: 400 });
    const id = await startJob(rig, SMALL_JOB);
    const events: WorkerEvent[] = [];
    let hang: () => void = () => undefined;
    const ghost = await inProcessWorker(rig, 'ghost', { beforeUpload: () => new Promise<void>((r) => (hang = r)) }, events);
    const ghostRun = ghost.start();
    await waitFor(() => events.some((e) => e.type === 'task'), 5000, 'the ghost to hold a lease');
    // Silence it: no more heartbeats or requests (as if the process died), then let a healthy worker finish.
    (ghost as unknown as { heartbeat: ReturnType<typeof setInterval> }).heartbeat && clearInterval((ghost as unknown as { heartbeat: ReturnType<typeof setInterval> }).heartbeat);
    const healthy = await inProcessWorker(rig, 'healthy');
    await healthy.start();
    await rig.coord.idle();
    expect(rig.coord.summary(id).state).toBe('done');
    const ghostId = ghost.workerId!;
    expect(rig.coord.workers().find((w) => w.id === ghostId)?.state).toBe('lost');
    expect(rig.coord.store.leasesOf(id).filter((l) => l.worker_id === ghostId).map((l) => l.state)).toEqual(['expired']);
    ledgerCountsEachTaskOnce(rig, id);
    hang();
    await ghost.stop();
    await ghostRun;
  });

  it('a stopping worker gives its lease back at once', async () => {
    rig = await makeRig({ leaseTimeoutMs: 60_000 });
    const id = await startJob(rig, SMALL_JOB);
    const events: WorkerEvent[] = [];
    let release: () => void = () => undefined;
    const w = await inProcessWorker(rig, 'quitter', { beforeUpload: () => new Promise<void>((r) => (release = r)) }, events);
    const run = w.start();
    await waitFor(() => events.some((e) => e.type === 'task'), 5000, 'a lease');
    const stopped = w.stop();
    release();
    await stopped;
    await run;
    const leases = rig.coord.store.leasesOf(id);
    expect(leases.map((l) => l.state)).toEqual(['returned']);
    expect(rig.coord.workers()[0]!.state).toBe('left');
    expect(rig.coord.summary(id).tasks.pending).toBe(SMALL_JOB.partitions);
  });

  it('pause stops leasing, resume goes on; cancel ends the job', async () => {
    rig = await makeRig();
    const id = await startJob(rig, SMALL_JOB);
    expect((await rig.admin(`/api/v1/admin/jobs/${id}/pause`, { method: 'POST' })).status).toBe(200);
    const w = await inProcessWorker(rig, 'p', { leaseWaitMs: 100 });
    const events: string[] = [];
    const w2 = await inProcessWorker(rig, 'p2', { leaseWaitMs: 100, onEvent: (e) => e.type === 'idle' && events.push(e.reason) });
    const run = w2.start();
    await waitFor(() => events.includes('paused'), 5000, 'a paused answer');
    expect(rig.coord.summary(id).tasks.done).toBe(0);
    expect((await rig.admin(`/api/v1/admin/jobs/${id}/pause`, { method: 'POST' })).status).toBe(409);
    expect((await rig.admin(`/api/v1/admin/jobs/${id}/resume`, { method: 'POST' })).status).toBe(200);
    await waitFor(() => rig!.coord.summary(id).iteration >= 3, 10_000, 'progress after resume');
    const cancel = await rig.admin(`/api/v1/admin/jobs/${id}/cancel`, { method: 'POST' });
    expect(cancel.status).toBe(200);
    expect(((await cancel.json()) as { state: string }).state).toBe('cancelled');
    await w2.stop();
    await run;
    await w.stop();
    const status = (await (await rig.app.request('/api/v1/status')).json()) as { job: unknown };
    expect(status.job).toBeNull();
  });

  it('a checkpoint that cannot be written does not stop the job; the next one is written', async () => {
    const logs: string[] = [];
    rig = await makeRig({ log: (m) => logs.push(m) });
    const res = await rig.admin('/api/v1/admin/jobs', { method: 'POST', body: JSON.stringify(SMALL_JOB), headers: { 'content-type': 'application/json' } });
    const { id } = (await res.json()) as { id: string };
    // The first checkpoint (after iteration 4) cannot be written: a folder stands where its temp file goes.
    const dir = join(rig.dir, 'jobs', id);
    mkdirSync(join(dir, `checkpoint-00000004.safetensors.tmp-${process.pid}`), { recursive: true });
    expect((await rig.admin(`/api/v1/admin/jobs/${id}/start`, { method: 'POST' })).status).toBe(200);
    const w = await inProcessWorker(rig, 'w');
    await w.start();
    await rig.coord.idle();
    const s = rig.coord.summary(id);
    expect(s.state).toBe('done');
    expect(rig.coord.perf.checkpointFailures).toBe(1);
    expect(logs.some((l) => /checkpoint at iteration 4 failed/.test(l))).toBe(true);
    expect(existsSync(join(dir, 'checkpoint-00000004.safetensors'))).toBe(false);
    expect(s.checkpointIteration).toBe(s.totalIterations);
    expect(readdirSync(dir).filter((f) => f.endsWith('.safetensors')).length).toBeGreaterThan(0);
    ledgerCountsEachTaskOnce(rig, id);
  });

  it('an upload refused with 429 or 503, or lost on the network, is retried: the finished work is not thrown away', async () => {
    rig = await makeRig({ leaseTimeoutMs: 60_000 });
    const id = await startJob(rig, SMALL_JOB);
    const r = rig;
    let failures = 0;
    const flaky = async (input: string, init?: RequestInit): Promise<Response> => {
      if (init?.method === 'PUT' && failures < 3) {
        failures++;
        if (failures === 1) return new Response(JSON.stringify({ error: 'rate-limited', detail: 'too many requests; retry in 10 ms' }), { status: 429 });
        if (failures === 2) return new Response(JSON.stringify({ error: 'internal', detail: 'try again' }), { status: 503 });
        throw new TypeError('connection reset');
      }
      return await r.fetch(input, init);
    };
    const events: WorkerEvent[] = [];
    const w = await inProcessWorker(rig, 'flaky', { fetch: flaky }, events);
    const t0 = Date.now();
    await w.start();
    await rig.coord.idle();
    expect(failures).toBe(3);
    expect(rig.coord.summary(id).state).toBe('done');
    // no result was dropped: no lease had to expire (that takes 60 s here), none was refused
    expect(Date.now() - t0).toBeLessThan(30_000);
    expect(events.filter((e) => e.type === 'rejected')).toEqual([]);
    expect(rig.coord.store.leasesOf(id).every((l) => l.state === 'done')).toBe(true);
    ledgerCountsEachTaskOnce(rig, id);
  });

  it('a worker that left from elsewhere (its tab closed, with its token) does not come back on its own next request', async () => {
    rig = await makeRig({ leaseTimeoutMs: 60_000 });
    await startJob(rig, SMALL_JOB);
    const r = rig;
    let token: string | null = null;
    const spying = async (input: string, init?: RequestInit): Promise<Response> => {
      const t = (init?.headers as Record<string, string> | undefined)?.[WORKER_HEADER];
      if (t) token = t;
      return await r.fetch(input, init);
    };
    const events: WorkerEvent[] = [];
    const w = await inProcessWorker(rig, 'tab', { fetch: spying, exitWhenDone: false, throttle: 0.3 }, events);
    const running = w.start();
    await waitFor(() => events.some((e) => e.type === 'done'), 20_000, 'a task done');
    // what the page's pagehide handler sends
    const left = await rig.app.request(PATHS.leave, { method: 'POST', headers: { [WORKER_HEADER]: token! } });
    expect(left.status).toBe(200);
    await running; // the loop ends on its next request's 401 worker-left
    expect(events.some((e) => e.type === 'idle' && e.reason === 'left')).toBe(true);
    expect(events.filter((e) => e.type === 'registered').length).toBe(1); // it did not register again
    const workers = (await (await rig.admin('/api/v1/admin/workers')).json()) as { workers: { state: string }[] };
    expect(workers.workers.filter((x) => x.state === 'active')).toEqual([]);
  });
});
