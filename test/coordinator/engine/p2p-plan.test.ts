/**
 * The tree planner and the check of a partial (coordinator/engine/p2p-plan.ts):
 * heap shape of any fan-in, claims limited to the uploader's strict
 * descendants' leases of this tree, leaf results summed whole, scalars and
 * sketch; a tampered partial refused.
 */
import { describe, expect, test } from 'vitest';
import { checkPartial, claimable, descendants, planTree, type TreePlan } from '../../../coordinator/engine/p2p-plan.ts';
import type { LeaseInfo } from '../../../coordinator/engine/intake.ts';
import { sketchTensors, type SketchReport } from '../../../core/protocol/sketch.ts';

const SEED = 'aaaabbbbccccdddd0000111122223333';
const OWN = '99998888777766665555444433332222';

describe('planTree', () => {
  test('a heap of the given fan-in: every peer once, parents and children agree', () => {
    for (const [n, f] of [[1, 2], [4, 2], [8, 2], [8, 4], [13, 3]] as const) {
      const peers = Array.from({ length: n }, (_, i) => `w-${i}`);
      const nodes = planTree(peers, f);
      expect(nodes.map((x) => x.peer)).toEqual(peers);
      expect(nodes[0]!.parent).toBeNull();
      for (const [i, x] of nodes.entries()) {
        expect(x.children.length).toBeLessThanOrEqual(f);
        for (const c of x.children) expect(nodes[c]!.parent).toBe(i);
      }
      expect(descendants(nodes, 0).size).toBe(n - 1);
    }
    expect(planTree(['a', 'b', 'c', 'd'], 2).map((x) => x.children)).toEqual([[1, 2], [3], [], []]);
  });

  test('refuses a bad fan-in or a repeated peer', () => {
    expect(() => planTree(['a'], 0)).toThrow(/fan-in/);
    expect(() => planTree(['a', 'a'], 2)).toThrow(/twice/);
  });
});

/** Tree a(b(d), c) of fan-in 2; each of b, c, d holds one lease with a result of 50 + 7 floats. */
function fixture() {
  const nodes = planTree(['a', 'b', 'c', 'd'], 2);
  const lease = (id: string, workerId: string, partition: number): LeaseInfo => ({ id, jobId: 'j', taskId: `j:3:${partition}`, partition, iteration: 3, workerId, deadline: Infinity, state: 'active' });
  const leases = { a: lease('l-a', 'a', 0), b: lease('l-b', 'b', 1), c: lease('l-c', 'c', 2), d: lease('l-d', 'd', 3) };
  const plan: TreePlan = { id: 't-1', jobId: 'j', iteration: 3, nodes, checkSeed: SEED, buckets: 64, leases: new Map(Object.entries(leases).map(([w, l]) => [w, [l.id]])) };
  const grads = (k: number): Float32Array[] => [Float32Array.from({ length: 50 }, (_, i) => Math.sin(i * k + 1) * 3), Float32Array.from({ length: 7 }, (_, i) => Math.cos(i + k))];
  const result = { b: grads(1), c: grads(2), d: grads(3) };
  const report = (w: 'b' | 'c' | 'd', count: number): SketchReport => ({ treeId: 't-1', leaseIds: [leases[w].id], count, loss: count / 2, correct: 1, tree: sketchTensors(result[w], SEED, 64), own: sketchTensors(result[w], OWN, 64) });
  const reports = new Map([['l-b', report('b', 10)], ['l-c', report('c', 11)], ['l-d', report('d', 12)]]);
  const sum = (...ws: ('b' | 'c' | 'd')[]): Float32Array[] => [0, 1].map((t) => { const out = new Float32Array(result.b[t]!.length); for (const w of ws) result[w][t]!.forEach((x, i) => (out[i]! += x)); return out; });
  return { plan, leases, reports, sum };
}

describe('checkPartial', () => {
  test('an honest root partial and an honest interior partial pass', () => {
    const { plan, leases, reports, sum } = fixture();
    const root = checkPartial({ plan, uploader: 'a', claimed: [leases.b, leases.c, leases.d], reports, grads: sum('b', 'd', 'c'), count: 33, loss: 16.5, correct: 3 });
    expect(root).toMatchObject({ ok: true, leaves: 3 });
    const mid = checkPartial({ plan, uploader: 'b', claimed: [leases.d], reports, grads: sum('d'), count: 12, loss: 6, correct: 1 });
    expect(mid).toMatchObject({ ok: true, leaves: 1 });
  });

  test('a claim outside the uploader\'s strict descendants, or of a lease not issued in this tree, is refused', () => {
    const { plan, leases, reports, sum } = fixture();
    const own = checkPartial({ plan, uploader: 'b', claimed: [leases.b, leases.d], reports, grads: sum('b', 'd'), count: 22, loss: 11, correct: 2 });
    expect(own).toMatchObject({ ok: false, code: 'coverage-claim' });
    const sibling = checkPartial({ plan, uploader: 'b', claimed: [leases.c], reports, grads: sum('c'), count: 11, loss: 5.5, correct: 1 });
    expect(sibling).toMatchObject({ ok: false, code: 'coverage-claim' });
    expect(claimable(plan, 'a', { ...leases.d, id: 'l-other' })).toBe(false);
    const leaf = checkPartial({ plan, uploader: 'd', claimed: [], reports, grads: sum(), count: 0, loss: 0, correct: 0 });
    expect(leaf).toMatchObject({ ok: false, code: 'coverage-claim' });
    const stranger = checkPartial({ plan, uploader: 'z', claimed: [leases.d], reports, grads: sum('d'), count: 12, loss: 6, correct: 1 });
    expect(stranger).toMatchObject({ ok: false, code: 'coverage-claim' });
  });

  test('a lease without a report, or part of a leaf\'s result, is refused', () => {
    const { plan, leases, reports, sum } = fixture();
    const partial = new Map(reports);
    partial.delete('l-c');
    expect(checkPartial({ plan, uploader: 'a', claimed: [leases.b, leases.c, leases.d], reports: partial, grads: sum('b', 'c', 'd'), count: 33, loss: 16.5, correct: 3 })).toMatchObject({ ok: false, code: 'coverage-claim' });
    const bundled = new Map(reports);
    const both = { ...reports.get('l-b')!, leaseIds: ['l-b', 'l-d'] };
    bundled.set('l-b', both);
    bundled.set('l-d', both);
    expect(checkPartial({ plan, uploader: 'a', claimed: [leases.b], reports: bundled, grads: sum('b'), count: 10, loss: 5, correct: 1 })).toMatchObject({ ok: false, code: 'coverage-claim' });
  });

  test('a small vector added on the way, or altered scalars, fail the sketch check', () => {
    const { plan, leases, reports, sum } = fixture();
    const forged = sum('b', 'c', 'd');
    forged[0]![7]! += 0.01;
    const r = checkPartial({ plan, uploader: 'a', claimed: [leases.b, leases.c, leases.d], reports, grads: forged, count: 33, loss: 16.5, correct: 3 });
    expect(r).toMatchObject({ ok: false, code: 'sketch-mismatch' });
    expect((r as { detail: string }).detail).toMatch(/altered on the way/);
    expect(checkPartial({ plan, uploader: 'a', claimed: [leases.b, leases.c, leases.d], reports, grads: sum('b', 'c', 'd'), count: 33, loss: 17, correct: 3 })).toMatchObject({ ok: false, code: 'sketch-mismatch' });
    expect(checkPartial({ plan, uploader: 'a', claimed: [leases.b, leases.c, leases.d], reports, grads: sum('b', 'c', 'd'), count: 33, loss: 16.5, correct: 2 })).toMatchObject({ ok: false, code: 'sketch-mismatch' });
  });
});
