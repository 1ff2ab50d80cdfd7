/**
 * Training modes through the coordinator (in-process workers over
 * app.request): local SGD with 1 and 2 workers equals the in-process
 * trainer; with the delta broadcast every worker holds the coordinator's
 * weights bit for bit at every version; a worker that joins mid-job, or
 * falls too far behind for a delta, gets whole weights and continues.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createCpuBackend } from '../../core/cpu/index.ts';
import { parseJobConfig, type JobConfig } from '../../core/model/config.ts';
import { tensorShapes } from '../../core/model/params.ts';
import { decodeWeights, type TaskLease } from '../../core/protocol/index.ts';
import type { GridWorker } from '../../client/worker/worker.ts';
import { Trainer } from '../../coordinator/trainer.ts';
import { dataFor, inProcessWorker, makeRig, maxAbsDiff, SMALL_JOB, startJob, waitFor, type Rig } from './harness.ts';

function job(training: object): JobConfig {
  return parseJobConfig({ ...SMALL_JOB, name: 'modes', training });
}

async function reference(cfg: JobConfig): Promise<Map<string, Float32Array>> {
  const data = await dataFor(cfg);
  const tr = new Trainer({ backend: await createCpuBackend(), config: cfg, train: data.train });
  while (!tr.done) await tr.step();
  return tr.params;
}

async function finalWeights(rig: Rig, id: string, cfg: JobConfig): Promise<Map<string, Float32Array>> {
  const res = await rig.admin(`/api/v1/admin/jobs/${id}/weights`);
  expect(res.status).toBe(200);
  return decodeWeights(new Uint8Array(await res.arrayBuffer()), tensorShapes(cfg)).params;
}

/** Every task done by exactly one lease, every step's metrics counting its tasks' examples. */
function countedOnce(rig: Rig, id: string, cfg: JobConfig): void {
  const s = rig.coord.summary(id);
  expect(s.state).toBe('done');
  expect(s.iteration).toBe(s.totalIterations);
  const tasks = rig.coord.store.tasksOf(id);
  expect(tasks.length).toBe(s.totalIterations * cfg.partitions);
  expect(tasks.every((t) => t.state === 'done')).toBe(true);
  const done = rig.coord.store.leasesOf(id).filter((l) => l.state === 'done');
  expect(new Set(done.map((l) => l.task_id)).size).toBe(tasks.length);
  const metrics = rig.coord.metrics(id).iterations;
  expect(metrics.length).toBe(s.totalIterations);
  for (const m of metrics) expect(m.count).toBe(tasks.filter((t) => t.iteration === m.iteration).reduce((a, t) => a + t.count, 0));
}

/** Records, at each upload, the weights the worker held against the lease's (the coordinator's published blob of that version). */
function watchHeld(held: { version: number; ok: boolean }[], get: () => GridWorker) {
  return async (l: TaskLease): Promise<void> => {
    const h = get().heldWeights();
    held.push({ version: l.weights.version, ok: h?.version === l.weights.version && h.hash === l.weights.hash });
  };
}

describe('training modes through the coordinator', () => {
  let rig: Rig | undefined;
  afterEach(async () => {
    await rig?.close();
    rig = undefined;
  });

  const cases = [
    ['f32', 1, 'flat', 1],
    ['f32', 2, 'tree', 2],
    ['int8', 1, 'flat', 1],
    ['int8', 2, 'tree', 1],
  ] as const;
  for (const [enc, workers, aggregator, tasksPerLease] of cases) {
    it(`local SGD, ${enc} both ways, ${workers} worker(s) (${aggregator}${tasksPerLease > 1 ? `, ${tasksPerLease} tasks per lease` : ''}) equals the in-process trainer; workers hold the published weights bit for bit at every version`, async () => {
      const cfg = job({ mode: 'local-sgd', localSteps: 2, up: enc, down: enc, blockSize: 64 });
      const ref = await reference(cfg);
      rig = await makeRig({ aggregator, fanIn: 2 });
      const id = await startJob(rig, cfg);
      const held: { version: number; ok: boolean }[] = [];
      const ws: GridWorker[] = [];
      for (let i = 0; i < workers; i++) ws.push(await inProcessWorker(rig, `w${i}`, { tasksPerLease, beforeUpload: watchHeld(held, () => ws[i]!) }));
      await Promise.all(ws.map((w) => w.start()));
      await rig.coord.idle();
      countedOnce(rig, id, cfg);
      const s = rig.coord.summary(id);
      // 600 examples, 3 partitions, batch 100: 2 local steps per phase -> one round per phase
      expect(s.totalIterations).toBe(3);
      const diff = maxAbsDiff(ref, await finalWeights(rig, id, cfg));
      console.log(`local SGD ${enc}, ${workers} worker(s): max abs weight difference vs in-process trainer ${diff.toExponential(2)}`);
      expect(diff).toBeLessThan(enc === 'f32' ? 1e-5 : 1e-4);
      expect(held.length).toBeGreaterThan(0);
      expect(held.every((h) => h.ok)).toBe(true);
      expect(new Set(held.map((h) => h.version)).size).toBe(3);
      // every worker downloaded whole weights once and followed by deltas after
      for (const w of ws) {
        expect(w.weightStats.wholeDownloads).toBe(1);
        expect(w.weightStats.deltasRefused).toBe(0);
      }
      expect(ws.reduce((n, w) => n + w.weightStats.deltasApplied, 0)).toBeGreaterThan(0);
    });
  }

  it('sync mode with int8 results and int8 deltas: 2 workers equal the in-process trainer, bit-identical weights at every version', async () => {
    const cfg = job({ mode: 'sync', up: 'int8', down: 'int8', blockSize: 128 });
    const ref = await reference(cfg);
    rig = await makeRig({ aggregator: 'tree', fanIn: 2 });
    const id = await startJob(rig, cfg);
    const held: { version: number; ok: boolean }[] = [];
    const ws: GridWorker[] = [];
    for (let i = 0; i < 2; i++) ws.push(await inProcessWorker(rig, `w${i}`, { beforeUpload: watchHeld(held, () => ws[i]!) }));
    await Promise.all(ws.map((w) => w.start()));
    await rig.coord.idle();
    countedOnce(rig, id, cfg);
    const diff = maxAbsDiff(ref, await finalWeights(rig, id, cfg));
    console.log(`sync int8, 2 workers: max abs weight difference vs in-process trainer ${diff.toExponential(2)}`);
    expect(diff).toBeLessThan(1e-3);
    expect(held.every((h) => h.ok)).toBe(true);
    expect(new Set(held.map((h) => h.version)).size).toBe(rig.coord.summary(id).totalIterations);
    // pre-training sends only the changed RBM: deltas are far below whole weights
    const rows = rig.coord.metrics(id).iterations;
    expect(rows.length).toBe(18);
  });

  it('a worker that joins mid-job, and one whose version is too old for the deltas on offer, get whole weights and continue', async () => {
    const cfg = parseJobConfig({ ...SMALL_JOB, name: 'join', pretrain: { epochs: 2, batchSize: 100 }, training: { mode: 'sync', up: 'f16', down: 'int8' } });
    rig = await makeRig();
    const id = await startJob(rig, cfg);
    const held: { version: number; ok: boolean }[] = [];
    let late: GridWorker | undefined;
    let a: GridWorker | undefined;
    let pausedAt = -1;
    a = await inProcessWorker(rig, 'a', {
      beforeUpload: async (l) => {
        await watchHeld(held, () => a!)(l);
        if (l.weights.version === 3 && pausedAt < 0) {
          pausedAt = 3;
          a!.pause();
        }
      },
    });
    const runA = a.start();
    await waitFor(() => pausedAt === 3, 20_000, 'worker a to reach version 3');
    late = await inProcessWorker(rig, 'late', { beforeUpload: watchHeld(held, () => late!) });
    const runLate = late.start();
    // a stays paused until the job is further past what it holds than the deltas a lease offers (8 versions)
    await waitFor(() => rig!.coord.summary(id).iteration >= 13, 30_000, 'the late worker to move the job on');
    a.resume();
    await Promise.all([runA, runLate]);
    await rig.coord.idle();
    countedOnce(rig, id, cfg);
    expect(held.every((h) => h.ok)).toBe(true);
    expect(late.weightStats.wholeDownloads).toBeGreaterThanOrEqual(1); // joined at version >= 3: whole weights
    expect(late.weightStats.deltasApplied).toBeGreaterThan(0);
    expect(a.weightStats.wholeDownloads).toBeGreaterThanOrEqual(2); // at the start, and after falling behind
    expect(a.weightStats.deltasRefused).toBe(0);
  });

  it('local SGD, int8: the coordinator restarted mid-job resumes from its checkpoint (outer momentum and published weights) to the in-process weights', async () => {
    const cfg = parseJobConfig({ ...SMALL_JOB, name: 'restart', checkpointEvery: 1, training: { mode: 'local-sgd', localSteps: 1, up: 'int8', down: 'int8', blockSize: 64 } });
    const ref = await reference(cfg);
    const dir = mkdtempSync(join(tmpdir(), 'tessera-modes-'));
    try {
      const first = await makeRig({ aggregator: 'flat' }, dir);
      const id = await startJob(first, cfg);
      expect(first.coord.summary(id).totalIterations).toBe(6);
      // 5 rounds of 3 tasks, then the coordinator goes away: its checkpoint is mid fine-tuning, where the
      // published weights differ from the master weights (at a phase's start they are equal)
      const w1 = await inProcessWorker(first, 'before', { maxTasks: 5 * 3 });
      await w1.start();
      expect(first.coord.summary(id).iteration).toBe(5);
      expect(first.coord.summary(id).checkpointIteration).toBe(5);
      await first.close();
      rig = await makeRig({ aggregator: 'flat' }, dir);
      expect(rig.coord.summary(id).state).toBe('running');
      const w2 = await inProcessWorker(rig, 'after');
      await w2.start();
      await rig.coord.idle();
      expect(rig.coord.summary(id).state).toBe('done');
      const diff = maxAbsDiff(ref, await finalWeights(rig, id, cfg));
      console.log(`local SGD int8 across a coordinator restart: max abs weight difference vs in-process trainer ${diff.toExponential(2)}`);
      expect(diff).toBeLessThan(1e-6);
      expect(w2.weightStats.wholeDownloads).toBe(1);
    } finally {
      await rig?.close();
      rig = undefined;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
