import { describe, expect, it } from 'vitest';
import { compareResults, DEFAULT_TOLERANCE, relativeL2, type Comparable } from '../../../coordinator/trust/compare.ts';

function result(seed: number, count = 20): { grads: Map<string, Float32Array>; loss: number; correct: number; count: number } {
  let s = seed >>> 0;
  const r = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32 - 0.5);
  return {
    grads: new Map([['a.W', Float32Array.from({ length: 37 * 11 }, () => r() * count)], ['a.b', Float32Array.from({ length: 11 }, () => r() * count)]]),
    loss: 40.5,
    correct: 13,
    count,
  };
}

function map(x: Comparable, f: (v: number, i: number, name: string) => number): Comparable {
  return { ...x, grads: new Map([...x.grads].map(([n, g]) => [n, Float32Array.from(g, (v, i) => f(v, i, n))])) };
}

describe('relativeL2', () => {
  it('is the distance over the larger norm, with a floor; different lengths never agree', () => {
    expect(relativeL2(Float32Array.of(3, 4), Float32Array.of(3, 4))).toBe(0);
    expect(relativeL2(Float32Array.of(3, 4), Float32Array.of(0, 0))).toBe(1);
    expect(relativeL2(Float32Array.of(3, 4), Float32Array.of(-3, -4))).toBe(2);
    expect(relativeL2(Float32Array.of(1e-6, 0), Float32Array.of(0, 0), 1)).toBeCloseTo(1e-6, 12);
    expect(relativeL2(Float32Array.of(0, 0), Float32Array.of(0, 0))).toBe(0);
    expect(relativeL2(Float32Array.of(1), Float32Array.of(1, 2))).toBe(Infinity);
  });
});

describe('compareResults', () => {
  const a = result(1);
  it('honest rounding agrees in both phases', () => {
    const b = map(a, (v, i) => v * (1 + (i % 2 ? 3e-7 : -3e-7)));
    for (const phase of ['pretrain', 'finetune'] as const) {
      const c = compareResults(a, { ...b, loss: a.loss * (1 + 1e-7) }, phase);
      expect(c).toMatchObject({ agree: true, detail: '' });
      expect(c.worstRelL2).toBeLessThan(1e-6);
    }
  });

  it('attacks disagree: sign flip, scaling, random direction, a small shift, another partition', () => {
    const attacks: [string, Comparable][] = [
      ['sign flip', map(a, (v) => -v)],
      ['scaled 1.05', map(a, (v) => v * 1.05)],
      ['random', result(99)],
      ['shift 5% of the norm in one coordinate', map(a, (v, i, n) => (n === 'a.W' && i === 0 ? v + 0.05 * Math.hypot(...a.grads.get('a.W')!) : v))],
    ];
    for (const [name, b] of attacks) {
      const c = compareResults(a, b, 'pretrain');
      expect(c.agree, name).toBe(false);
      expect(c.detail, name).toMatch(/relative L2 distance/);
    }
  });

  it('finetuning is held tighter than pretraining (no Bernoulli draws to flip)', () => {
    const b = map(a, (v) => v * (1 + 1e-3));
    expect(compareResults(a, b, 'pretrain').agree).toBe(true);
    expect(compareResults(a, b, 'finetune').agree).toBe(false);
  });

  it('count, loss, correct and tensor sets are compared', () => {
    expect(compareResults(a, { ...a, count: 21 }, 'finetune').detail).toMatch(/counts 20 vs 21/);
    expect(compareResults(a, { ...a, loss: a.loss * 1.001 }, 'finetune').detail).toMatch(/loss 40.5 vs/);
    expect(compareResults(a, { ...a, correct: a.correct + 1 }, 'finetune').agree).toBe(true);
    expect(compareResults(a, { ...a, correct: a.correct + 3 }, 'finetune').detail).toMatch(/correct 13 vs 16/);
    const fewer = { ...a, grads: new Map([['a.W', a.grads.get('a.W')!]]) };
    const c = compareResults(a, fewer, 'finetune');
    expect(c).toMatchObject({ agree: false, worstTensor: 'a.b', worstRelL2: Infinity });
    expect(c.detail).toMatch(/tensor a.b only in one result/);
  });

  it('a tensor of near-zero gradients is held to the floor, not to its own tiny norm', () => {
    const tiny = { ...a, grads: new Map([['z', Float32Array.of(1e-9, -2e-9, 0)]]) };
    const other = { ...a, grads: new Map([['z', Float32Array.of(-1e-9, 2e-9, 1e-9)]]) };
    expect(compareResults(tiny, other, 'finetune').agree).toBe(true);
    expect(DEFAULT_TOLERANCE.floorPerExample * a.count).toBeGreaterThan(1e-6);
  });
});
