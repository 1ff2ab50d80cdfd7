/**
 * Counter-based randomness: every draw is a pure function of
 * (seed, iteration, example, unit), so two honest workers given the same task
 * draw the same numbers. The same function is written in WGSL in
 * shaders/rng.wgsl; keep them identical (test/core/rng.test.ts pins values).
 *
 * mix() is Chris Wellons' "lowbias32" integer hash; all arithmetic is on u32
 * with wrapping multiplication (Math.imul here, u32 `*` in WGSL).
 */

/** The `unit` value reserved for choosing which examples an iteration samples. */
export const SAMPLE_STREAM = 0xffffffff;

/** lowbias32: a 32-bit integer finaliser with good avalanche. */
export function mix(x: number): number {
  x = (x ^ (x >>> 16)) >>> 0;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x = (x ^ (x >>> 15)) >>> 0;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  x = (x ^ (x >>> 16)) >>> 0;
  return x;
}

/** A u32 hash of the four counters. */
export function hash4(seed: number, iteration: number, example: number, unit: number): number {
  let h = mix((seed + 0x9e3779b9) >>> 0);
  h = mix((h ^ iteration) >>> 0);
  h = mix((h ^ example) >>> 0);
  return mix((h ^ unit) >>> 0);
}

/** A uniform draw in [0, 1) with 24 bits, exactly representable in float32. */
export function uniform(seed: number, iteration: number, example: number, unit: number): number {
  return (hash4(seed, iteration, example, unit) >>> 8) * (1 / 16777216);
}

/**
 * The examples of [lo, hi) that iteration `iteration` samples, each kept with
 * probability `fraction` (Bernoulli sampling without replacement, like Spark's
 * RDD.sample). Depends only on global example indices, never on how the data
 * set is partitioned among workers.
 */
export function sampleRange(seed: number, iteration: number, lo: number, hi: number, fraction: number): Uint32Array {
  if (fraction >= 1) {
    const all = new Uint32Array(hi - lo);
    for (let i = 0; i < all.length; i++) all[i] = lo + i;
    return all;
  }
  const keep: number[] = [];
  for (let e = lo; e < hi; e++) if (uniform(seed, iteration, e, SAMPLE_STREAM) < fraction) keep.push(e);
  return Uint32Array.from(keep);
}

/** A float in [-1, 1) from the counters, for deterministic weight initialisation. */
export function symmetric(seed: number, stream: number, row: number, col: number): number {
  return uniform(seed, stream, row, col) * 2 - 1;
}
