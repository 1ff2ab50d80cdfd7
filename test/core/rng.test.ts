import { describe, expect, it } from 'vitest';
import { hash4, mix, SAMPLE_STREAM, sampleRange, uniform } from '../../core/rng.ts';

describe('counter-based rng', () => {
  it('mix is lowbias32: pinned values that the WGSL copy must reproduce', () => {
    // Computed once by hand-checked BigInt arithmetic below; pinned so a change to either copy is caught.
    const ref = (x: bigint): bigint => {
      const M = 0xffffffffn;
      x ^= x >> 16n; x = (x * 0x7feb352dn) & M; x ^= x >> 15n; x = (x * 0x846ca68bn) & M; x ^= x >> 16n;
      return x;
    };
    for (const x of [0, 1, 2, 0x9e3779b9, 0xdeadbeef, 0xffffffff, 123456789]) {
      expect(mix(x)).toBe(Number(ref(BigInt(x))));
    }
    expect(hash4(1, 2, 3, 4)).toBe(hash4(1, 2, 3, 4));
    expect(hash4(1, 2, 3, 4)).not.toBe(hash4(1, 2, 3, 5));
    expect(hash4(1, 2, 3, 4)).not.toBe(hash4(2, 2, 3, 4));
  });

  it('uniform draws are in [0, 1), float32-exact and evenly spread', () => {
    const bins = new Array<number>(10).fill(0);
    const n = 100_000;
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const u = uniform(7, 3, i, 11);
      expect(u >= 0 && u < 1).toBe(true);
      if (i < 1000) expect(Math.fround(u)).toBe(u);
      bins[Math.floor(u * 10)]!++;
      sum += u;
    }
    expect(Math.abs(sum / n - 0.5)).toBeLessThan(0.005);
    for (const b of bins) expect(Math.abs(b - n / 10)).toBeLessThan(600); // ~6 sigma
  });

  it('sampleRange keeps about the fraction, depends only on global ids, and is reproducible', () => {
    const whole = sampleRange(5, 9, 0, 20_000, 0.05);
    expect(Math.abs(whole.length - 1000)).toBeLessThan(150);
    const a = sampleRange(5, 9, 0, 7_000, 0.05);
    const b = sampleRange(5, 9, 7_000, 20_000, 0.05);
    expect([...a, ...b]).toEqual([...whole]);
    expect(sampleRange(5, 10, 0, 20_000, 0.05)).not.toEqual(whole);
    expect(sampleRange(5, 9, 10, 15, 1)).toEqual(Uint32Array.from([10, 11, 12, 13, 14]));
    // the sampling stream differs from the unit streams that hidden-unit draws use
    expect(uniform(5, 9, 3, SAMPLE_STREAM)).not.toBe(uniform(5, 9, 3, 0));
  });
});
