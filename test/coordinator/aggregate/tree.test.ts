import { describe, expect, it } from 'vitest';
import { createSummer, FlatAggregator, TreeAggregator, type Sums } from '../../../coordinator/aggregate/index.ts';
import { aggregatorContract } from './common.case.ts';

aggregatorContract('tree, fan-in 2', () => new TreeAggregator(2));
aggregatorContract('tree, fan-in 4', () => new TreeAggregator(4));
aggregatorContract('tree, fan-in 16', () => new TreeAggregator(16));
aggregatorContract('tree, fan-in 2, WebAssembly SIMD', () => new TreeAggregator(2, createSummer('simd')));
aggregatorContract('tree, fan-in 4, WebAssembly SIMD', () => new TreeAggregator(4, createSummer('simd')));

describe('TreeAggregator', () => {
  it('SIMD and the plain loop give the same bits', () => {
    const make = (seed: number): Sums => {
      let x = seed;
      const r = () => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1;
      return { grads: new Map([['w', Float32Array.from({ length: 1001 }, r)], ['b', Float32Array.from({ length: 7 }, r)]]), loss: 1, correct: 0, count: 1 };
    };
    const ids = Array.from({ length: 21 }, (_, i) => `t${i}`);
    const totals = [new TreeAggregator(3), new TreeAggregator(3, createSummer('simd')), new FlatAggregator(createSummer('simd'))].map((agg) => {
      agg.begin(ids);
      ids.forEach((id, i) => agg.add(id, make(i + 1)));
      return agg.finish();
    });
    expect([...totals[1]!.grads.get('w')!]).toEqual([...totals[0]!.grads.get('w')!]);
    expect([...totals[1]!.grads.get('b')!]).toEqual([...totals[0]!.grads.get('b')!]);
    // the flat SIMD total adds in another order: equal to the tree's and to a float64 sum up to float32 rounding
    const parts = ids.map((_, i) => make(i + 1));
    for (const name of ['w', 'b']) {
      const exact = Array.from(parts[0]!.grads.get(name)!, (_, j) => parts.reduce((acc, p) => acc + p.grads.get(name)![j]!, 0));
      for (const t of totals) {
        const got = t.grads.get(name)!;
        expect(got.length).toBe(exact.length);
        const worst = exact.reduce((m, x, j) => Math.max(m, Math.abs(got[j]! - x)), 0);
        expect(worst, name).toBeLessThan(21 * 2 ** -20); // 21 roundings of partial sums below 32, each at most half an ulp (2^-20)
      }
    }
    expect(totals[2]!.count).toBe(totals[0]!.count);
    expect(totals[2]!.loss).toBe(totals[0]!.loss);
    expect(totals[2]!.count).toBe(21);
  });

  it('rejects a fan-in below 2', () => {
    expect(() => new TreeAggregator(1)).toThrow(/fan-in/);
  });
});
