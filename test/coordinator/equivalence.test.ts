/**
 * The coordinator with 1 and 2 workers (in-process, through app.request)
 * trains the same weights as the in-process trainer with the same seed, up
 * to the order of float summation.
 */
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { createCpuBackend } from '../../core/cpu/index.ts';
import { tensorShapes } from '../../core/model/params.ts';
import { decodeWeights } from '../../core/protocol/index.ts';
import { MemoryBlobCache, type WorkerEvent } from '../../client/worker/worker.ts';
import { encodePartition } from '../../core/protocol/partition.ts';
import { partitionDataset } from '../../datasets/partition.ts';
import { Trainer } from '../../coordinator/trainer.ts';
import { dataFor, inProcessWorker, ledgerCountsEachTaskOnce, makeRig, maxAbsDiff, SMALL_JOB, startJob, type Rig } from './harness.ts';

async function reference(): Promise<Map<string, Float32Array>> {
  const data = await dataFor(SMALL_JOB);
  const tr = new Trainer({ backend: await createCpuBackend(), config: SMALL_JOB, train: data.train });
  while (!tr.done) await tr.step();
  return tr.params;
}

/** The job's weights as the admin API serves them. */
async function finalWeights(rig: Rig, id: string): Promise<{ params: Map<string, Float32Array>; version: number }> {
  const res = await rig.admin(`/api/v1/admin/jobs/${id}/weights`);
  expect(res.status).toBe(200);
  return decodeWeights(new Uint8Array(await res.arrayBuffer()), tensorShapes(SMALL_JOB));
}

describe('coordinator reproduces the in-process trainer', () => {
  let rig: Rig | undefined;
  afterEach(async () => {
    await rig?.close();
    rig = undefined;
  });

  for (const [workers, aggregator] of [[1, 'flat'], [2, 'tree']] as const) {
    it(`${workers} worker(s), ${aggregator} aggregation: same weights within float-summation tolerance`, async () => {
      const ref = await reference();
      rig = await makeRig({ aggregator, fanIn: 2 });
      const id = await startJob(rig, SMALL_JOB);
      const ws = await Promise.all(Array.from({ length: workers }, (_, i) => inProcessWorker(rig!, `w${i}`)));
      await Promise.all(ws.map((w) => w.start()));
      await rig.coord.idle();
      const summary = rig.coord.summary(id);
      expect(summary.state).toBe('done');
      expect(summary.iteration).toBe(summary.totalIterations);
      const got = await finalWeights(rig, id);
      expect(got.version).toBe(summary.totalIterations);
      const diff = maxAbsDiff(ref, got.params);
      console.log(`${workers} worker(s): max abs weight difference vs in-process trainer ${diff.toExponential(2)}`);
      expect(diff).toBeLessThan(1e-4);
      // every task done exactly once; with 2 workers both took part
      const tasks = rig.coord.store.tasksOf(id);
      expect(tasks.length).toBe(summary.totalIterations * SMALL_JOB.partitions);
      expect(tasks.every((t) => t.state === 'done')).toBe(true);
      const doneLeases = rig.coord.store.leasesOf(id).filter((l) => l.state === 'done');
      expect(new Set(doneLeases.map((l) => l.task_id)).size).toBe(doneLeases.length);
      expect(doneLeases.length).toBe(tasks.length);
      if (workers === 2) expect(new Set(doneLeases.map((l) => l.worker_id)).size).toBe(2);
      expect(summary.lastEvaluation).not.toBeNull();
      // the bodies were read straight into the aggregator's WebAssembly memory
      expect(rig.coord.perf.slotBodies).toBe(tasks.length);
    });
  }

  it('blobs corrupted in transit are caught by their hash: nothing computed from them is uploaded, and the weights come out the same', async () => {
    const ref = await reference();
    rig = await makeRig();
    const id = await startJob(rig, SMALL_JOB);
    const r = rig;
    let gets = 0;
    let puts = 0;
    const corrupted: string[] = [];
    const lossy = async (input: string, init?: RequestInit): Promise<Response> => {
      const res = await r.fetch(input, init);
      if (init?.method === 'PUT') puts++;
      if (!input.includes('/blobs/') || res.status !== 200) return res;
      gets++;
      if (gets !== 2 && gets !== 6) return res;
      // One bit of a value near the end: the blob still decodes; only its hash tells.
      const bytes = new Uint8Array(await res.arrayBuffer());
      bytes[bytes.length - 2]! ^= 1;
      corrupted.push(input);
      return new Response(bytes, { status: 200, headers: res.headers });
    };
    const events: WorkerEvent[] = [];
    const w = await inProcessWorker(rig, 'lossy', { fetch: lossy, backoffMs: { initial: 10, max: 50 } }, events);
    await w.start();
    await rig.coord.idle();
    expect(corrupted.length).toBe(2);
    expect(events.filter((e) => e.type === 'offline' && /corrupted in transit/.test(e.message)).length).toBe(2);
    const summary = rig.coord.summary(id);
    expect(summary.state).toBe('done');
    const tasks = rig.coord.store.tasksOf(id);
    expect(puts).toBe(tasks.length); // one upload per task: none from a corrupted blob
    // the two tasks computed on corrupted blobs were given back at once, not left to expire
    const states = rig.coord.store.leasesOf(id).map((l) => l.state);
    expect(states.filter((s) => s === 'returned').length).toBe(2);
    expect(states.filter((s) => s !== 'returned' && s !== 'done')).toEqual([]);
    const got = await finalWeights(rig, id);
    expect(maxAbsDiff(ref, got.params)).toBeLessThan(1e-4);
  });

  it('a damaged partition in a worker cache is caught by its hash, deleted and downloaded again; the weights come out the same', async () => {
    const ref = await reference();
    const parts = partitionDataset((await dataFor(SMALL_JOB)).train, SMALL_JOB.partitions);
    const good = encodePartition(parts[1]!);
    const hash = createHash('sha256').update(good).digest('hex');
    const damaged = good.slice();
    damaged[damaged.length >> 1]! ^= 0x10; // one pixel: still decodes, only the hash tells
    const cache = new MemoryBlobCache();
    await cache.put(hash, damaged);
    rig = await makeRig();
    const id = await startJob(rig, SMALL_JOB);
    const events: WorkerEvent[] = [];
    const w = await inProcessWorker(rig, 'damaged-cache', { cache, backoffMs: { initial: 10, max: 50 } }, events);
    await w.start();
    await rig.coord.idle();
    expect(rig.coord.summary(id).state).toBe('done');
    expect(events.filter((e) => e.type === 'offline' && /cache is damaged/.test(e.message)).length).toBe(1);
    expect(await cache.get(hash)).toEqual(good); // replaced by the verified download
    const got = await finalWeights(rig, id);
    expect(maxAbsDiff(ref, got.params)).toBeLessThan(1e-4);
  });

  it('blobs whose Content-Length does not describe the body (as behind a compressing proxy) still train to the same weights', async () => {
    const ref = await reference();
    rig = await makeRig();
    const id = await startJob(rig, SMALL_JOB);
    const r = rig;
    let rewritten = 0;
    const proxy = async (input: string, init?: RequestInit): Promise<Response> => {
      const res = await r.fetch(input, init);
      if (!input.includes('/blobs/') || res.status !== 200) return res;
      const bytes = new Uint8Array(await res.arrayBuffer());
      rewritten++;
      const headers = new Headers(res.headers);
      headers.set('content-length', String(bytes.length >> 2)); // the "compressed" length
      return new Response(bytes, { status: 200, headers });
    };
    const events: WorkerEvent[] = [];
    const w = await inProcessWorker(rig, 'behind-proxy', { fetch: proxy }, events);
    await w.start();
    await rig.coord.idle();
    expect(rig.coord.summary(id).state).toBe('done');
    expect(rewritten).toBeGreaterThan(SMALL_JOB.partitions);
    expect(events.filter((e) => e.type === 'offline')).toEqual([]);
    const got = await finalWeights(rig, id);
    expect(maxAbsDiff(ref, got.params)).toBeLessThan(1e-4);
  });

  for (const workers of [1, 2]) {
    it(`${workers} worker(s) taking up to 3 tasks per lease (one summed upload per bundle): same weights, every task counted once`, async () => {
      const ref = await reference();
      rig = await makeRig({ aggregator: 'tree', fanIn: 2 });
      const id = await startJob(rig, SMALL_JOB);
      const r = rig;
      let puts = 0;
      const counting = async (input: string, init?: RequestInit): Promise<Response> => {
        if (init?.method === 'PUT') puts++;
        return await r.fetch(input, init);
      };
      const ws = await Promise.all(Array.from({ length: workers }, (_, i) => inProcessWorker(rig!, `bundler${i}`, { fetch: counting, tasksPerLease: 3 })));
      await Promise.all(ws.map((w) => w.start()));
      await rig.coord.idle();
      const summary = rig.coord.summary(id);
      expect(summary.state).toBe('done');
      const got = await finalWeights(rig, id);
      const diff = maxAbsDiff(ref, got.params);
      console.log(`${workers} worker(s), 3 tasks per lease: max abs weight difference vs in-process trainer ${diff.toExponential(2)}; ${puts} uploads for ${summary.totalIterations} iterations`);
      expect(diff).toBeLessThan(1e-4);
      ledgerCountsEachTaskOnce(rig, id);
      const tasks = rig.coord.store.tasksOf(id);
      expect(puts).toBeLessThan(tasks.length); // bundles: fewer uploads than tasks
      if (workers === 1) expect(puts).toBe(summary.totalIterations); // one per iteration
    });
  }
});
