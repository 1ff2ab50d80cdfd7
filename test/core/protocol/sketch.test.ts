/**
 * The count-sketch of core/protocol/sketch.ts: linear (the sketch of a float32
 * sum equals the sum of the sketches within the stated bound), keyed by its
 * seed, sensitive to a small change, and its report's wire format refuses
 * bad bytes.
 */
import { describe, expect, test } from 'vitest';
import { addSketches, compareSketch, decodeSketchReport, encodeSketchReport, sketchTensors, type Sketch } from '../../../core/protocol/sketch.ts';
import { ProtocolError } from '../../../core/protocol/results.ts';

const SEED = '0123456789abcdef0011223344556677';
const OTHER = 'fedcba98765432100011223344556677';

function rand(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = ((s / 2 ** 32) * 2 - 1) * scale * (i % 7 === 0 ? 100 : 1); // awkward magnitudes
  }
  return out;
}

/** m leaf results of two tensors (sizes not multiples of anything), their float32 sum in order. */
function leaves(m: number): { parts: Float32Array[][]; sum: Float32Array[] } {
  const sizes = [1237, 91];
  const parts = Array.from({ length: m }, (_, k) => sizes.map((n, t) => rand(n, 17 * k + t + 1)));
  const sum = sizes.map((n) => new Float32Array(n));
  for (const p of parts) p.forEach((t, ti) => t.forEach((x, i) => (sum[ti]![i]! += x)));
  return { parts, sum };
}

describe('count-sketch', () => {
  test('is linear: the sketch of a float32 sum equals the sum of the leaves\' sketches within the bound', () => {
    for (const m of [1, 2, 5, 16]) {
      const { parts, sum } = leaves(m);
      const total = parts.map((p) => sketchTensors(p, SEED, 64)).reduce((a, b) => addSketches(a, b));
      expect(compareSketch(sketchTensors(sum, SEED, 64), total, m)).toBeNull();
    }
  });

  test('depends on the seed and puts every coordinate in some bucket', () => {
    const x = [rand(500, 3)];
    const a = sketchTensors(x, SEED, 32);
    const b = sketchTensors(x, OTHER, 32);
    expect(Array.from(a.values)).not.toEqual(Array.from(b.values));
    const massA = a.mass.reduce((s, v) => s + v, 0);
    const abs = x[0]!.reduce((s, v) => s + Math.abs(v), 0);
    expect(massA).toBeCloseTo(abs, 6);
  });

  test('sees a small vector added to a partial', () => {
    const { parts, sum } = leaves(4);
    const total = parts.map((p) => sketchTensors(p, SEED)).reduce((a, b) => addSketches(a, b));
    const forged = sum.map((t) => t.slice());
    forged[0]![100]! += 1e-3; // one coordinate, a thousandth
    expect(compareSketch(sketchTensors(forged, SEED), total, 4)).not.toBeNull();
    const spread = sum.map((t) => t.map((x, i) => x + (i % 2 ? 1e-4 : -1e-4)));
    expect(compareSketch(sketchTensors(spread, SEED), total, 4)).not.toBeNull();
  });

  test('refuses a bad seed or bucket count', () => {
    expect(() => sketchTensors([new Float32Array(4)], 'xyz')).toThrow(/32 lowercase hex/);
    expect(() => sketchTensors([new Float32Array(4)], SEED, 100)).toThrow(/power of two/);
  });
});

describe('sketch report', () => {
  const s = (k: number): Sketch => sketchTensors([rand(300, k)], SEED, 16);
  const report = { treeId: 't-1', leaseIds: ['a-1', 'b-2'], count: 12, loss: 3.5, correct: 4, tree: s(1), own: s(2) };

  test('round-trips', () => {
    const r = decodeSketchReport(encodeSketchReport(report));
    expect({ ...r, tree: Array.from(r.tree.values), own: Array.from(r.own.mass) }).toEqual({ ...report, tree: Array.from(report.tree.values), own: Array.from(report.own.mass) });
  });

  test('refuses wrong magic, truncation, bad header fields and non-finite buckets', () => {
    const good = encodeSketchReport(report);
    const cases: [Uint8Array, RegExp][] = [
      [good.slice(0, good.length - 8), /bytes, expected/],
      [(() => { const b = good.slice(); b[0] = 0; return b; })(), /magic/],
      [encodeSketchReport({ ...report, leaseIds: [] }), /leaseIds/],
      [encodeSketchReport({ ...report, correct: 99 }), /correct/],
      [encodeSketchReport({ ...report, treeId: 'bad id!' }), /treeId/],
      [encodeSketchReport({ ...report, tree: { values: report.tree.values.map((x, i) => (i === 3 ? NaN : x)), mass: report.tree.mass } }), /tree values\[3\]/],
      [new Uint8Array(3), /3 bytes/],
    ];
    for (const [bytes, re] of cases) {
      let err: unknown;
      try {
        decodeSketchReport(bytes);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ProtocolError);
      expect((err as Error).message).toMatch(re);
    }
  });
});
