/**
 * The contract every Aggregator passes (run by flat.test.ts, tree.test.ts and
 * robust.test.ts): exact sums up to float rounding in any arrival order,
 * exact coverage, duplicates and unknown tasks refused without effect, no
 * early total. A robust rule (`exact: false`) estimates the sum instead of
 * adding it, so it gets results that agree (every task's gradients are its
 * count times one per-example gradient), where every rule must give the sum.
 */
import { describe, expect, it } from 'vitest';
import type { Aggregator, Sums } from '../../../coordinator/aggregate/index.ts';

function rand(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

/** Tensors of awkward sizes. */
const SIZES = { 'a.W': 37 * 13, 'a.b': 13, 'out.b': 3 };

function randomSums(seed: number): Sums {
  const r = rand(seed);
  const grads = new Map<string, Float32Array>();
  for (const [name, n] of Object.entries(SIZES)) grads.set(name, Float32Array.from({ length: n }, () => r() * 8));
  return { grads, loss: Math.abs(r()) * 10, correct: seed % 7, count: 5 + (seed % 11) };
}

/** Results that agree: count times one per-example gradient (drawn once), with the loss and counts of randomSums. */
function agreeingSums(seed: number): Sums {
  const base = randomSums(0);
  const own = randomSums(seed);
  const grads = new Map<string, Float32Array>();
  for (const [name, g] of base.grads) grads.set(name, Float32Array.from(g, (x) => x * own.count));
  return { grads, loss: own.loss, correct: own.correct, count: own.count };
}

function reference(seeds: number[], makeSums: (seed: number) => Sums): { grads: Map<string, Float64Array>; loss: number; correct: number; count: number } {
  const grads = new Map<string, Float64Array>();
  let loss = 0, correct = 0, count = 0;
  for (const s of seeds) {
    const x = makeSums(s);
    for (const [name, g] of x.grads) {
      const acc = grads.get(name) ?? new Float64Array(g.length);
      for (let i = 0; i < g.length; i++) acc[i] += g[i]!;
      grads.set(name, acc);
    }
    loss += x.loss;
    correct += x.correct;
    count += x.count;
  }
  return { grads, loss, correct, count };
}

function shuffled<T>(xs: T[], seed: number): T[] {
  const r = rand(seed);
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor((r() + 0.5) * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

export interface ContractOptions {
  /** false for a robust rule: it is held to the sum on results that agree only (default true) */
  readonly exact?: boolean;
}

export function aggregatorContract(name: string, make: () => Aggregator, options: ContractOptions = {}): void {
  const makeSums = options.exact === false ? agreeingSums : randomSums;
  describe(`Aggregator contract: ${name}`, () => {
    for (const n of [1, 2, 5, 16, 37]) {
      it(`sums ${n} tasks in any order to the float64 reference`, () => {
        const agg = make();
        const ids = Array.from({ length: n }, (_, i) => `t${i}`);
        agg.begin(ids);
        for (const i of shuffled([...ids.keys()], n)) {
          expect(agg.complete()).toBe(false);
          expect(agg.add(ids[i]!, makeSums(i + 1))).toBe('added');
        }
        expect(agg.complete()).toBe(true);
        expect(agg.covered).toBe(n);
        const total = agg.finish();
        const ref = reference(ids.map((_, i) => i + 1), makeSums);
        expect([...total.covers].sort()).toEqual([...ids].sort());
        expect(total.count).toBe(ref.count);
        expect(total.correct).toBe(ref.correct);
        expect(total.loss).toBeCloseTo(ref.loss, 9);
        for (const [tn, g] of ref.grads) {
          const got = total.grads.get(tn)!;
          expect(got.length).toBe(g.length);
          let worst = 0;
          for (let i = 0; i < g.length; i++) worst = Math.max(worst, Math.abs(got[i]! - g[i]!));
          expect(worst).toBeLessThan(1e-5 * n * 4);
        }
      });
    }

    it('refuses a duplicate and an unknown task without effect', () => {
      const agg = make();
      agg.begin(['x', 'y']);
      expect(agg.add('x', makeSums(1))).toBe('added');
      expect(agg.add('x', makeSums(99))).toBe('duplicate');
      expect(agg.add('zzz', makeSums(2))).toBe('unknown');
      expect(agg.covered).toBe(1);
      expect(agg.has('x')).toBe(true);
      expect(agg.has('y')).toBe(false);
      expect(agg.add('y', makeSums(2))).toBe('added');
      const ref = reference([1, 2], makeSums);
      expect(agg.finish().count).toBe(ref.count);
    });

    it('takes one partial that covers several tasks (summed by one worker); refuses one naming a covered, repeated or unknown task without effect', () => {
      const agg = make();
      agg.begin(['a', 'b', 'c', 'd']);
      expect(agg.add(['a', 'zzz'], makeSums(1))).toBe('unknown');
      expect(agg.add([], makeSums(1))).toBe('unknown');
      expect(agg.add(['a', 'a'], makeSums(1))).toBe('duplicate');
      expect(agg.covered).toBe(0);
      // a and c summed by one worker, in that order
      const ac = makeSums(1);
      const c = makeSums(3);
      for (const [name, g] of ac.grads) g.forEach((_, i) => (g[i] = g[i]! + c.grads.get(name)![i]!));
      expect(agg.add(['a', 'c'], { grads: ac.grads, loss: ac.loss + c.loss, correct: ac.correct + c.correct, count: ac.count + c.count })).toBe('added');
      expect(agg.covered).toBe(2);
      expect(agg.has('c')).toBe(true);
      expect(agg.add(['b', 'c'], makeSums(2))).toBe('duplicate');
      expect(agg.covered).toBe(2);
      agg.add('b', makeSums(2));
      expect(agg.complete()).toBe(false);
      agg.add('d', makeSums(4));
      const total = agg.finish();
      expect([...total.covers].sort()).toEqual(['a', 'b', 'c', 'd']);
      const ref = reference([1, 2, 3, 4], makeSums);
      expect(total.count).toBe(ref.count);
      expect(total.correct).toBe(ref.correct);
      for (const [name, want] of ref.grads) {
        const got = total.grads.get(name)!;
        for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThan(1e-4);
      }
    });

    it('will not hand out an incomplete total', () => {
      const agg = make();
      agg.begin(['a', 'b', 'c']);
      agg.add('a', makeSums(1));
      agg.add('c', makeSums(3));
      expect(() => agg.finish()).toThrow(/2 of 3/);
    });

    it('begin() starts afresh', () => {
      const agg = make();
      agg.begin(['a', 'b']);
      agg.add('a', makeSums(1));
      agg.begin(['a']);
      expect(agg.covered).toBe(0);
      expect(agg.add('a', makeSums(4))).toBe('added');
      expect(agg.finish().count).toBe(makeSums(4).count);
      expect(() => agg.begin(['q', 'q'])).toThrow(/repeat/);
    });

    it('counts the bytes it sums', () => {
      const agg = make();
      agg.begin(['a', 'b', 'c']);
      for (const [i, t] of ['a', 'b', 'c'].entries()) agg.add(t, makeSums(i));
      agg.finish();
      const perTask = Object.values(SIZES).reduce((a, b) => a + b, 0) * 4;
      expect(agg.bytesSummed).toBe(2 * perTask);
    });
  });
}
