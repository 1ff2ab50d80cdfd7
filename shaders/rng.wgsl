// rng: the counter-based hash of core/rng.ts, written identically in WGSL.
// A library, not a kernel: no bindings, no entry point, no workgroup size. The
// backend prepends it to kernels that draw random numbers (matmul's sampling
// epilogue). All arithmetic is on u32 with wrapping multiplication.

// lowbias32 (Chris Wellons): a 32-bit integer finaliser with good avalanche.
fn rng_mix(x0: u32) -> u32 {
  var x = x0;
  x = x ^ (x >> 16u);
  x = x * 0x7feb352du;
  x = x ^ (x >> 15u);
  x = x * 0x846ca68bu;
  x = x ^ (x >> 16u);
  return x;
}

// A u32 hash of the four counters.
fn rng_hash4(seed: u32, iteration: u32, example: u32, unit: u32) -> u32 {
  var h = rng_mix(seed + 0x9e3779b9u);
  h = rng_mix(h ^ iteration);
  h = rng_mix(h ^ example);
  return rng_mix(h ^ unit);
}

// A uniform draw in [0, 1) with 24 bits, exactly representable in f32.
fn rng_uniform(seed: u32, iteration: u32, example: u32, unit: u32) -> f32 {
  return f32(rng_hash4(seed, iteration, example, unit) >> 8u) * (1.0 / 16777216.0);
}
