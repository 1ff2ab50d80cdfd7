/**
 * Peer-to-peer trees end to end in one process: tabs are TreeWorkers
 * (client/worker/tree-worker.ts) whose data channels are memory
 * (MemoryHub), talking to a real coordinator through app.request(); one
 * GridWorker (the Deno worker's loop) uploads directly beside them. Fan-in-2
 * trees train the in-process trainer's weights, every task counted once,
 * with fewer uploads than tasks; an interior tab that leaves mid-round loses
 * nothing; a tampering tab's partial fails the sketch check, is refused and
 * its tasks are redone; a forged claim and bad sketch reports are refused
 * and change nothing.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createCpuBackend } from '../../core/cpu/index.ts';
import { parseJobConfig } from '../../core/model/config.ts';
import { tensorShapes } from '../../core/model/params.ts';
import { decodeWeights, encodeSketchReport, P2P_PATHS, sketchTensors, TREE_HEADER, WORKER_HEADER, type RegisterResponse, type RoundResponse } from '../../core/protocol/index.ts';
import { TreeWorker, type Delivery, type PeerTransport, type TreeWorkerEvent } from '../../client/worker/tree-worker.ts';
import { Trainer } from '../../coordinator/trainer.ts';
import { dataFor, inProcessWorker, makeRig, maxAbsDiff, startJob, waitFor, type Rig } from './harness.ts';

const JOB = parseJobConfig({
  name: 'p2p-small',
  layers: [784, 24, 10],
  trainLimit: 800,
  testLimit: 200,
  partitions: 8,
  seed: 5,
  pretrain: { epochs: 1, batchSize: 100 },
  finetune: { epochs: 1, batchSize: 100 },
  checkpointEvery: 100,
});

/** Data channels in memory: a closed tab's channel fails. */
class MemoryHub {
  private readonly peers = new Map<string, (from: string, treeId: string, body: Uint8Array | null) => 'ack' | 'late'>();
  transport(): PeerTransport {
    let me = '';
    let handler: ((from: string, treeId: string, body: Uint8Array | null) => 'ack' | 'late') | null = null;
    return {
      send: async (peer, treeId, body): Promise<Delivery> => {
        await new Promise((r) => setTimeout(r, 1));
        const h = this.peers.get(peer);
        return h ? h(me, treeId, body ? body.slice() : null) : 'failed';
      },
      onPartial: (h) => {
        handler = h;
      },
      open: async (id) => {
        me = id;
        this.peers.set(id, (from, t, b) => handler!(from, t, b));
      },
      close: () => {
        this.peers.delete(me);
      },
    };
  }
}

async function reference(): Promise<Map<string, Float32Array>> {
  const data = await dataFor(JOB);
  const tr = new Trainer({ backend: await createCpuBackend(), config: JOB, train: data.train });
  while (!tr.done) await tr.step();
  return tr.params;
}

/** each tab's own events, by index (the last tabs() call) */
let perTab: TreeWorkerEvent[][] = [];

async function tabs(rig: Rig, n: number, events: TreeWorkerEvent[], extra: (i: number) => Partial<ConstructorParameters<typeof TreeWorker>[0]> = () => ({})): Promise<TreeWorker[]> {
  const hub = new MemoryHub();
  perTab = Array.from({ length: n }, () => []);
  return await Promise.all(
    Array.from({ length: n }, async (_, i) =>
      new TreeWorker({ coordinator: 'http://coordinator.test', backend: await createCpuBackend(), name: `tab-${i}`, runtime: 'node', transport: hub.transport(), fetch: rig.fetch, roundWaitMs: 2_000, ackMs: 3_000, exitWhenDone: true, bandwidthMbps: 100 - i, onEvent: (e) => {
        events.push(e);
        perTab[i]?.push(e);
      }, ...extra(i) }),
    ),
  );
}

/** Every task of the job done by exactly one lease, metrics counting all examples; returns the number of result uploads accepted. */
function countedOnce(rig: Rig, id: string): void {
  const s = rig.coord.summary(id);
  const tasks = rig.coord.store.tasksOf(id);
  expect(tasks.length).toBe(s.totalIterations * JOB.partitions);
  expect(tasks.every((t) => t.state === 'done')).toBe(true);
  const done = rig.coord.store.leasesOf(id).filter((l) => l.state === 'done');
  expect(done.length).toBe(tasks.length);
  expect(new Set(done.map((l) => l.task_id)).size).toBe(tasks.length);
  for (const m of rig.coord.metrics(id).iterations) expect(m.count).toBe(tasks.filter((t) => t.iteration === m.iteration).reduce((a, t) => a + t.count, 0));
}

async function weightsOf(rig: Rig, id: string): Promise<Map<string, Float32Array>> {
  const res = await rig.admin(`/api/v1/admin/jobs/${id}/weights`);
  return decodeWeights(new Uint8Array(await res.arrayBuffer()), tensorShapes(JOB)).params;
}

describe('peer-to-peer trees among tabs', () => {
  let rig: Rig | undefined;
  afterEach(async () => {
    await rig?.close();
    rig = undefined;
  });

  it('4 tabs in fan-in-2 trees and a direct worker train the in-process weights; every task once; fewer uploads than tasks', async () => {
    const ref = await reference();
    rig = await makeRig({ p2p: { fanIn: 2, gatherMs: 150, collectMs: 4_000 } });
    const id = await startJob(rig, JOB);
    const events: TreeWorkerEvent[] = [];
    const ts = await tabs(rig, 4, events);
    const runs = ts.map((t) => t.start());
    await waitFor(() => ts.every((t) => t.workerId !== null), 5_000, 'tabs to register');
    const direct = await inProcessWorker(rig, 'deno-like', { throttle: 0.25 }); // slower than the tabs, so trees get most tasks
    await Promise.all([...runs, direct.start()]);
    await rig.coord.idle();
    const s = rig.coord.summary(id);
    expect(s.state).toBe('done');
    countedOnce(rig, id);
    expect(s.rejectedResults).toBe(0);
    const diff = maxAbsDiff(ref, await weightsOf(rig, id));
    const uploads = rig.coord.perf.results;
    const tasks = s.totalIterations * JOB.partitions;
    const viaTree = events.filter((e) => e.type === 'delivered' && e.how === 'ack').length;
    console.log(`p2p: ${s.totalIterations} iterations, ${tasks} tasks, ${uploads} uploads, ${viaTree} hand-ups over channels, max abs weight diff ${diff.toExponential(2)}`);
    expect(diff).toBeLessThan(1e-4);
    expect(viaTree).toBeGreaterThan(0);
    expect(uploads).toBeLessThan(tasks * 0.8);
  }, 120_000);

  it('an interior tab that leaves mid-round: its subtree\'s tasks complete by fallback or re-issue, each counted once', async () => {
    const ref = await reference();
    rig = await makeRig({ p2p: { fanIn: 2, gatherMs: 150, collectMs: 4_000 } });
    const id = await startJob(rig, JOB);
    const events: TreeWorkerEvent[] = [];
    const ts = await tabs(rig, 4, events);
    const runs = ts.map((t) => t.start());
    await waitFor(() => ts.every((t) => t.workerId !== null), 5_000, 'tabs to register');
    // the first tab that gets an interior role (children, a parent or not) closes as soon as it has it
    let closed = -1;
    await waitFor(() => {
      closed = perTab.findIndex((evs) => evs.some((x) => x.type === 'role' && x.role.children.length > 0 && x.role.iteration >= 1));
      return closed >= 0;
    }, 30_000, 'an interior role');
    await ts[closed]!.stop();
    const direct = await inProcessWorker(rig, 'deno-like');
    await Promise.all([...runs, direct.start()]);
    await rig.coord.idle();
    expect(rig.coord.summary(id).state).toBe('done');
    countedOnce(rig, id);
    expect(maxAbsDiff(ref, await weightsOf(rig, id))).toBeLessThan(1e-4);
  }, 120_000);

  it('a tab that adds a small vector to the partial it forwards is caught by the sketch check; its tasks are redone; the weights are the honest run\'s', async () => {
    const ref = await reference();
    rig = await makeRig({ p2p: { fanIn: 2, gatherMs: 150, collectMs: 4_000 } });
    const id = await startJob(rig, JOB);
    const events: TreeWorkerEvent[] = [];
    let tampered = 0;
    // tab-0 has the most bandwidth: the root of every tree it is in, the node that uploads partials
    const ts = await tabs(rig, 4, events, (i) => (i === 0 ? { tamper: (sum) => { if (tampered++ < 2) for (const g of sum.grads.values()) g[0]! += 1e-3; } } : {}));
    const runs = ts.map((t) => t.start());
    await waitFor(() => ts.every((t) => t.workerId !== null), 5_000, 'tabs to register');
    const direct = await inProcessWorker(rig, 'deno-like');
    await Promise.all([...runs, direct.start()]);
    await rig.coord.idle();
    const s = rig.coord.summary(id);
    expect(s.state).toBe('done');
    const refusals = events.filter((e) => e.type === 'refused');
    expect(tampered).toBeGreaterThan(0);
    expect(refusals.filter((e) => e.type === 'refused' && e.error.error === 'sketch-mismatch').length).toBe(Math.min(tampered, 2));
    expect(s.rejectedResults).toBe(Math.min(tampered, 2));
    const root = rig.coord.workers().find((w) => w.id === ts[0]!.workerId)!;
    expect(root.rejected).toBe(Math.min(tampered, 2));
    countedOnce(rig, id);
    expect(maxAbsDiff(ref, await weightsOf(rig, id))).toBeLessThan(1e-4);
  }, 120_000);

  it('a forged coverage claim, a report for another tab\'s lease and malformed reports are refused and change nothing', async () => {
    rig = await makeRig({ p2p: { fanIn: 2, gatherMs: 50, collectMs: 4_000 } });
    const id = await startJob(rig, JOB);
    const reg = async (name: string): Promise<RegisterResponse> => (await (await rig!.fetch('/api/v1/workers', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, runtime: 'browser', backend: 'cpu', adapter: '' }) })).json()) as RegisterResponse;
    const post = (tok: string, path: string, body: unknown): Promise<Response> => rig!.fetch(path, { method: 'POST', headers: { 'content-type': 'application/json', [WORKER_HEADER]: tok }, body: JSON.stringify(body) });
    const a = await reg('a');
    const b = await reg('b');
    // a round before joining, and a malformed join, are refused
    expect((await post(a.token, P2P_PATHS.round, { waitMs: 0 })).status).toBe(409);
    expect((await post(a.token, P2P_PATHS.join, { webrtc: 'yes' })).status).toBe(400);
    for (const w of [a, b]) expect((await post(w.token, P2P_PATHS.join, { webrtc: true, bandwidthMbps: w === a ? 10 : 1 })).status).toBe(200);
    const [ra, rb] = (await Promise.all([a, b].map(async (w) => (await (await post(w.token, P2P_PATHS.round, { waitMs: 2_000 })).json()) as RoundResponse)));
    expect(ra!.role && rb!.role).toBeTruthy();
    const root = ra!.role!.parent === null ? { w: a, role: ra!.role! } : { w: b, role: rb!.role! };
    const leaf = root.w === a ? { w: b, role: rb!.role! } : { w: a, role: ra!.role! };
    expect(leaf.role.parent).toBe(root.w.workerId);
    expect(leaf.role.seeds).not.toBeNull();
    expect(root.role.seeds).toBeNull(); // the node that forwards never holds the check seed
    const tasksBefore = rig.coord.summary(id).tasks;

    const sketch = (leaseIds: string[]) => {
      const z = new Float32Array(10);
      const s = sketchTensors([z], leaf.role.seeds!.check, leaf.role.buckets);
      return encodeSketchReport({ treeId: leaf.role.treeId, leaseIds, count: 0, loss: 0, correct: 0, tree: s, own: s }) as Uint8Array<ArrayBuffer>;
    };
    const report = (tok: string, body: Uint8Array<ArrayBuffer>): Promise<Response> => rig!.fetch(P2P_PATHS.sketch, { method: 'POST', headers: { [WORKER_HEADER]: tok, 'content-type': 'application/octet-stream' }, body });
    // the root may not report a leaf's sketch; a leaf may not report another tab's lease; garbage is refused
    expect((await report(root.w.token, sketch([leaf.role.leases[0]!.leaseId]))).status).toBe(403);
    expect((await report(leaf.w.token, sketch([root.role.leases[0]!.leaseId]))).status).toBe(403);
    expect((await report(leaf.w.token, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9]))).status).toBe(400);
    expect((await report(leaf.w.token, new Uint8Array(5 * 1024 * 1024) as Uint8Array<ArrayBuffer>)).status).toBe(413);

    // the root claims its own lease as a partial of the tree: refused (a partial covers strict descendants only)
    const own = root.role.leases[0]!;
    const put = (tok: string, leaseId: string, tree: string): Promise<Response> => rig!.fetch(`/api/v1/leases/${leaseId}/result`, { method: 'PUT', headers: { [WORKER_HEADER]: tok, [TREE_HEADER]: tree, 'content-type': 'application/vnd.safetensors' }, body: new Uint8Array(64) });
    const forged = await put(root.w.token, own.leaseId, root.role.treeId);
    expect(forged.status).toBe(403);
    expect(((await forged.json()) as { error: string }).error).toBe('coverage-claim');
    const unknownTree = await put(root.w.token, leaf.role.leases[0]!.leaseId, 't-nonesuch');
    expect(unknownTree.status).toBe(403);
    // nothing changed but the rejected counter: the same tasks are out, the leases still active
    expect(rig.coord.summary(id).tasks).toEqual(tasksBefore);
    expect(rig.coord.store.leasesOf(id).filter((l) => l.state === 'active').length).toBe(root.role.leases.length + leaf.role.leases.length);
  }, 60_000);
});

