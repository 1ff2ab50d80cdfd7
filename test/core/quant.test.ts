import { describe, expect, it } from 'vitest';
import {
  blockCount,
  checkInt8,
  decodeF16,
  decodeInt8,
  encodeF16,
  encodeInt8,
  f16Bits,
  f16Value,
  F16_MAX,
  QuantError,
  type Int8Blocks,
} from '../../core/quant.ts';

/** Awkward-size random tensor with a spread of magnitudes, never all zeros. */
function randomTensor(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  const next = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = (next() * 2 - 1) * scale * 10 ** Math.floor(next() * 4 - 2);
  return x;
}

describe('float16', () => {
  it('every finite pattern round-trips exactly, and values follow IEEE binary16', () => {
    for (let h = 0; h < 65536; h++) {
      const v = f16Value(h);
      if (Number.isNaN(v)) {
        expect((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0).toBe(true);
        continue;
      }
      expect(f16Bits(v)).toBe(h);
    }
    expect(f16Value(0x3c00)).toBe(1);
    expect(f16Value(0xc000)).toBe(-2);
    expect(f16Value(0x7bff)).toBe(F16_MAX);
    expect(f16Value(0x0001)).toBe(2 ** -24);
    expect(f16Value(0x0400)).toBe(2 ** -14);
    expect(f16Value(0x7c00)).toBe(Infinity);
  });

  it('rounds to the nearest pattern, ties to even, in normal and subnormal ranges', () => {
    // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even (1)
    expect(f16Bits(1 + 2 ** -11)).toBe(0x3c00);
    // 1 + 3 * 2^-11 is halfway between 1 + 2^-10 (odd) and 1 + 2^-9: up
    expect(f16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    // halfway between subnormals 1 and 2 (x 2^-24): to 2 (even)
    expect(f16Bits(1.5 * 2 ** -24)).toBe(0x0002);
    expect(f16Bits(0.5 * 2 ** -24)).toBe(0x0000); // tie with 0: even
    expect(f16Bits(0.51 * 2 ** -24)).toBe(0x0001);
    // the largest subnormal rounds up into the smallest normal
    expect(f16Bits(2 ** -14 - 2 ** -26)).toBe(0x0400);
    // past the top: infinity
    expect(f16Bits(65520)).toBe(0x7c00);
    expect(f16Bits(65519)).toBe(0x7bff);
    expect(f16Bits(-0)).toBe(0x8000);
  });

  it('random values: nearest of the two neighbours, error within the stated bound', () => {
    const x = randomTensor(10_007, 3, 100);
    const h = encodeF16(x);
    const back = decodeF16(h);
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      const err = Math.abs(back[i]! - v);
      const bound = Math.abs(v) >= 2 ** -14 ? Math.abs(v) * 2 ** -11 : 2 ** -25;
      expect(err).toBeLessThanOrEqual(bound);
      // no other pattern next to it is closer
      const p = h[i]!;
      for (const q of [p - 1, p + 1]) {
        if (q < 0 || (q & 0x7c00) === 0x7c00 || ((q ^ p) & 0x8000) !== 0) continue;
        expect(Math.abs(f16Value(q) - v)).toBeGreaterThanOrEqual(err);
      }
    }
  });

  it('refuses values it cannot carry, naming the index, and patterns that are not finite', () => {
    const x = new Float32Array([1, 2, 70000]);
    expect(() => encodeF16(x)).toThrow(/index 2 is outside float16's range/);
    expect(() => encodeF16(new Float32Array([NaN]))).toThrow(/index 0 is not finite/);
    expect(() => decodeF16(new Uint16Array([0x3c00, 0x7c00]))).toThrow(QuantError);
    expect(() => decodeF16(new Uint16Array([0x7e00]))).toThrow(/index 0 is not finite/);
    expect(() => decodeF16(new Uint16Array(3), new Float32Array(2))).toThrow(/3 values/);
  });

  it('decode can add into an accumulator', () => {
    const acc = new Float32Array([1, 2, 3]);
    decodeF16(encodeF16(new Float32Array([0.5, -1, 0.25])), acc, true);
    expect([...acc]).toEqual([1.5, 1, 3.25]);
  });
});

describe('int8 with a scale per block', () => {
  const seed = { seed: 11, stream: 4, tensor: 2 };

  it('every value within one scale of the input, scales from the block maxima', () => {
    for (const [n, b] of [[1000, 256], [257, 256], [1, 256], [7, 3], [4099, 64]] as const) {
      const x = randomTensor(n, n + b, 5);
      const t = encodeInt8(x, b, seed);
      expect(t.scales.length).toBe(blockCount(n, b));
      checkInt8(t, n);
      const back = decodeInt8(t);
      for (let i = 0; i < n; i++) {
        const s = t.scales[Math.floor(i / b)]!;
        expect(Math.abs(back[i]! - x[i]!)).toBeLessThan(s * (1 + 1e-6));
      }
      for (let k = 0; k < t.scales.length; k++) {
        let max = 0;
        for (let i = k * b; i < Math.min(n, (k + 1) * b); i++) max = Math.max(max, Math.abs(x[i]!));
        expect(t.scales[k]).toBe(Math.fround(max / 127));
      }
    }
  });

  it('is deterministic for a seed and differs between seeds and tensors', () => {
    const x = randomTensor(2000, 9);
    const a = encodeInt8(x, 256, seed);
    const b = encodeInt8(x, 256, seed);
    expect(Buffer.from(a.q.buffer).equals(Buffer.from(b.q.buffer))).toBe(true);
    const other = encodeInt8(x, 256, { ...seed, stream: 5 });
    const otherTensor = encodeInt8(x, 256, { ...seed, tensor: 3 });
    expect(Buffer.from(a.q.buffer).equals(Buffer.from(other.q.buffer))).toBe(false);
    expect(Buffer.from(a.q.buffer).equals(Buffer.from(otherTensor.q.buffer))).toBe(false);
  });

  it('stochastic rounding is unbiased: the mean over many seeds approaches the input', () => {
    const n = 300;
    const x = randomTensor(n, 21, 1);
    const draws = 4000;
    const mean = new Float64Array(n);
    let s0 = 0;
    for (let d = 0; d < draws; d++) {
      const t = encodeInt8(x, 100, { seed: 5, stream: d, tensor: 0 });
      s0 = t.scales[0]!;
      const v = decodeInt8(t);
      for (let i = 0; i < n; i++) mean[i]! += v[i]! / draws;
    }
    // each draw's error is in (-s, s) with variance <= s^2 / 4: the mean's standard error <= s / (2 sqrt(draws))
    let worst = 0;
    let deterministicBias = 0;
    for (let i = 0; i < n; i++) {
      const s = encodeInt8(x, 100, seed).scales[Math.floor(i / 100)]!;
      worst = Math.max(worst, Math.abs(mean[i]! - x[i]!) / (s / (2 * Math.sqrt(draws))));
      // what round-to-nearest would give, for contrast: its bias does not shrink with draws
      deterministicBias = Math.max(deterministicBias, Math.abs(Math.round(x[i]! / s) * s - x[i]!) / s);
    }
    expect(s0).toBeGreaterThan(0);
    expect(worst).toBeLessThan(5); // 5 standard errors, over 300 values
    expect(deterministicBias).toBeGreaterThan(0.4); // the test data does exercise rounding
  });

  it('a sum of dequantised partials equals the dequantised sum of the parts (decode with add)', () => {
    const parts = [randomTensor(513, 1), randomTensor(513, 2), randomTensor(513, 3)];
    const acc = new Float32Array(513);
    const ref = new Float64Array(513);
    parts.forEach((p, j) => {
      const t = encodeInt8(p, 128, { seed: 1, stream: 1, tensor: j });
      decodeInt8(t, acc, true);
      const d = decodeInt8(t);
      for (let i = 0; i < 513; i++) ref[i]! += d[i]!;
    });
    for (let i = 0; i < 513; i++) expect(acc[i]).toBeCloseTo(ref[i]!, 5);
  });

  it('an all-zero block gets a positive scale and zeros', () => {
    const x = new Float32Array(300);
    x[299] = 1;
    const t = encodeInt8(x, 256, seed);
    expect(t.scales[0]).toBe(1);
    expect(t.q.subarray(0, 256).every((v) => v === 0)).toBe(true);
    expect(decodeInt8(t)[299]).toBeCloseTo(1, 6);
  });

  it('refuses bad input naming the problem', () => {
    const good = encodeInt8(randomTensor(600, 4), 256, seed);
    const bad = (patch: Partial<Int8Blocks>, n = 600): (() => void) => () => checkInt8({ ...good, ...patch }, n);
    expect(bad({ scales: good.scales.subarray(0, 2) })).toThrow(/needs 3 scales, got 2/);
    expect(bad({}, 601)).toThrow(/600 values, expected 601/);
    expect(bad({ scales: Float32Array.from([1, NaN, 1]) })).toThrow(/scale NaN of block 1/);
    expect(bad({ scales: Float32Array.from([1, 1, 0]) })).toThrow(/scale 0 of block 2/);
    expect(bad({ scales: Float32Array.from([-1, 1, 1]) })).toThrow(/scale -1 of block 0/);
    expect(bad({ scales: Float32Array.from([1, Infinity, 1]) })).toThrow(/scale Infinity/);
    const q = good.q.slice();
    q[17] = -128;
    expect(bad({ q })).toThrow(/-128 at index 17/);
    expect(bad({ blockSize: 0 })).toThrow(/block size/);
    expect(() => encodeInt8(new Float32Array([1, NaN]), 256, seed)).toThrow(/index 1 is not finite/);
    expect(() => decodeInt8({ ...good, scales: Float32Array.from([1, 0, 1]) })).toThrow(QuantError);
  });
});
