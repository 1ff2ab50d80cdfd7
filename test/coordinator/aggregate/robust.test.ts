import { describe, expect, it } from 'vitest';
import { AggregationError, FlatAggregator, RobustAggregator, ROBUST_RULES, weightedMedian, weightedTrimmedMean, type Sums } from '../../../coordinator/aggregate/index.ts';
import { aggregatorContract } from './common.case.ts';

for (const rule of ROBUST_RULES) aggregatorContract(`robust: ${rule}`, () => new RobustAggregator({ rule }), { exact: false });
aggregatorContract('robust: trimmed-mean, trim 0.4', () => new RobustAggregator({ rule: 'trimmed-mean', trim: 0.4 }), { exact: false });
aggregatorContract('robust: centered-clip, radius 0.5, 5 rounds', () => new RobustAggregator({ rule: 'centered-clip', clipRadius: 0.5, iterations: 5 }), { exact: false });

function gauss(seed: number): () => number {
  let s = seed >>> 0;
  const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 0.5) / 2 ** 32;
  return () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
}

const P = 203; // coordinates of 'w' (not a multiple of anything)

/** A source's sums: count times (truth + noise) per example, summed. */
function honest(seed: number, count: number, truth: Float64Array): Sums {
  const r = gauss(seed);
  const w = Float32Array.from(truth, (t) => count * t + Math.sqrt(count) * r());
  return { grads: new Map([['w', w]]), loss: count, correct: 0, count };
}

function scaled(s: Sums, by: number): Sums {
  return { ...s, grads: new Map([...s.grads].map(([n, g]) => [n, Float32Array.from(g, (x) => x * by)])) };
}

/** L2 distance of an aggregate's per-example mean from the truth. */
function error(total: Sums, truth: Float64Array): number {
  const g = total.grads.get('w')!;
  let s = 0;
  for (let i = 0; i < P; i++) s += (g[i]! / total.count - truth[i]!) ** 2;
  return Math.sqrt(s);
}

describe('weighted order statistics', () => {
  const order = new Int32Array(4);
  it('median: the value where the cumulative weight reaches one half, the midpoint on a tie', () => {
    expect(weightedMedian(Float64Array.of(3, 1, 2, 10), Float64Array.of(0.25, 0.25, 0.25, 0.25), order)).toBe(2.5);
    expect(weightedMedian(Float64Array.of(0, 0, 5, 1), Float64Array.of(0.1, 0.1, 0.7, 0.1), order)).toBe(5);
    expect(weightedMedian(Float64Array.of(-4, 9, 1, 2), Float64Array.of(0.4, 0.05, 0.05, 0.5), order)).toBe(2);
    expect(weightedMedian(Float64Array.of(-4, 9, 1, 2), Float64Array.of(0.4, 0.05, 0.1, 0.45), order)).toBe(1.5);
  });
  it('trimmed mean: trim 0 is the weighted mean; cuts fractional weight at both ends', () => {
    const v = Float64Array.of(1, 2, 3, 100), w = Float64Array.of(0.25, 0.25, 0.25, 0.25);
    expect(weightedTrimmedMean(v, w, order, 0)).toBeCloseTo(26.5, 12);
    expect(weightedTrimmedMean(v, w, order, 0.25)).toBeCloseTo(2.5, 12);
    // 0.3 cut per side: keeps 0.2 of value 2 and 0.2 of value 3
    expect(weightedTrimmedMean(v, w, order, 0.3)).toBeCloseTo(2.5, 12);
    expect(weightedTrimmedMean(Float64Array.of(1, 2, 3, 100), Float64Array.of(0.5, 0.2, 0.2, 0.1), order, 0.1)).toBeCloseTo((0.4 * 1 + 0.2 * 2 + 0.2 * 3) / 0.8, 12);
  });
});

describe('RobustAggregator', () => {
  const truth = Float64Array.from({ length: P }, (_, i) => Math.sin(i) * 0.3);
  const ids = Array.from({ length: 16 }, (_, i) => `t${i}`);

  function run(agg: { begin(t: readonly string[]): void; add(t: string, s: Sums, src?: string): unknown; finish(): Sums }, byzantine: number, attack: (h: Sums, i: number) => Sums): Sums {
    agg.begin(ids);
    ids.forEach((id, i) => {
      const h = honest(i + 1, 100, truth);
      agg.add(id, i < byzantine ? attack(h, i) : h, `w${i}`);
    });
    return agg.finish();
  }

  const attacks: Record<string, (h: Sums, i: number) => Sums> = {
    'sign flip x100': (h) => scaled(h, -100),
    'constant direction': (h) => ({ ...h, grads: new Map([['w', new Float32Array(P).fill(50 * h.count)]]) }),
  };

  for (const [attackName, attack] of Object.entries(attacks)) {
    it(`5 of 16 sources attacking (${attackName}): the sum is ruined, every robust rule stays near the truth`, () => {
      const clean = error(run(new FlatAggregator(), 0, attack), truth);
      const summed = error(run(new FlatAggregator(), 5, attack), truth);
      expect(summed).toBeGreaterThan(100 * clean);
      for (const agg of [new RobustAggregator({ rule: 'median' }), new RobustAggregator({ rule: 'trimmed-mean', trim: 0.35 }), new RobustAggregator({ rule: 'centered-clip' })]) {
        const e = error(run(agg, 5, attack), truth);
        // honest per-example noise per coordinate is 0.1 over 11 sources; the bias a robust rule keeps is a few times that
        expect(e, agg.kind).toBeLessThan(8 * clean + 0.5);
        expect(e, agg.kind).toBeLessThan(summed / 50);
      }
    });
  }

  it('with no attacker, each rule is near the mean (the accuracy it gives up is bounded)', () => {
    const clean = error(run(new FlatAggregator(), 0, (h) => h), truth);
    for (const rule of ROBUST_RULES) {
      const e = error(run(new RobustAggregator({ rule }), 0, (h) => h), truth);
      expect(e, rule).toBeLessThan(2 * clean);
    }
  });

  it('weighs sources by their example count', () => {
    const one = (v: number, count: number): Sums => ({ grads: new Map([['w', Float32Array.of(v * count)]]), loss: 0, correct: 0, count });
    const agg = new RobustAggregator({ rule: 'median' });
    agg.begin(['a', 'b', 'c']);
    agg.add('a', one(0, 1), 'x');
    agg.add('b', one(0, 1), 'y');
    agg.add('c', one(5, 10), 'z');
    const total = agg.finish();
    expect(total.count).toBe(12);
    expect(total.grads.get('w')![0]).toBeCloseTo(5 * 12, 4);
  });

  it("sums a source's partials before it votes: two partials of one source equal one partial of their sum", () => {
    for (const rule of ROBUST_RULES) {
      const pieces = new RobustAggregator({ rule });
      const whole = new RobustAggregator({ rule });
      const four = ['a', 'b', 'c', 'd'];
      pieces.begin(four);
      whole.begin(four);
      const sums = [honest(1, 30, truth), honest(2, 30, truth), honest(3, 30, truth), scaled(honest(4, 30, truth), -20)];
      for (const [i, id] of ['a', 'b'].entries()) pieces.add(id, scaled(sums[i]!, 1), `w${i}`);
      pieces.add('c', scaled(sums[2]!, 1), 'cheat');
      pieces.add('d', scaled(sums[3]!, 1), 'cheat');
      for (const [i, id] of ['a', 'b'].entries()) whole.add(id, scaled(sums[i]!, 1), `w${i}`);
      const cd = scaled(sums[2]!, 1);
      cd.grads.get('w')!.forEach((x, i, g) => (g[i] = x + sums[3]!.grads.get('w')![i]!));
      whole.add(['c', 'd'], { ...cd, count: 60, loss: 60 }, 'cheat');
      const a = pieces.finish().grads.get('w')!, b = whole.finish().grads.get('w')!;
      for (let i = 0; i < P; i++) expect(a[i]).toBeCloseTo(b[i]!, 3);
    }
  });

  it('refuses bad options and sources whose tensors differ', () => {
    expect(() => new RobustAggregator({ rule: 'mode' as never })).toThrow(/unknown robust rule "mode"/);
    expect(() => new RobustAggregator({ rule: 'trimmed-mean', trim: 0.5 })).toThrow(/trim must be in \[0, 0.5\)/);
    expect(() => new RobustAggregator({ rule: 'centered-clip', clipRadius: 0 })).toThrow(/radius/);
    expect(() => new RobustAggregator({ rule: 'centered-clip', iterations: 0 })).toThrow(/iterations/);
    const agg = new RobustAggregator({ rule: 'median' });
    agg.begin(['a', 'b']);
    agg.add('a', { grads: new Map([['w', new Float32Array(3)]]), loss: 0, correct: 0, count: 1 });
    agg.add('b', { grads: new Map([['w', new Float32Array(4)]]), loss: 0, correct: 0, count: 1 });
    expect(() => agg.finish()).toThrow(AggregationError);
  });
});
