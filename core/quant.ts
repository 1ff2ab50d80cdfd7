/**
 * Compressed tensors for the wire: float16, and int8 with one float32 scale
 * per block of values. Pure functions of their inputs (and, for int8, of a
 * seed), so a compressed result is still a pure function of (weights version,
 * partition, seed) and can be checked by recomputation.
 *
 * Shapes: n = element count, B = block size (values per scale),
 * nb = ceil(n / B) blocks; block k holds elements [k B, min(n, (k + 1) B)).
 *
 * float16: IEEE 754 binary16, round to nearest even. Relative error at most
 * 2^-11 for |x| >= 2^-14, absolute error at most 2^-25 below; a value that
 * would overflow (|x| > 65504 after rounding) or is not finite is refused, so
 * the receiver never sees an infinity that the sender did not have.
 *
 * int8: s_k = fround(max |x| in block k / 127) (1 for an all-zero block), and
 * q_i = floor(x_i / s_k + u_i) clamped to [-127, 127], with u_i a counter-based
 * uniform draw in [0, 1) (core/rng.ts). Stochastic rounding is unbiased,
 * E[q_i s_k] = x_i (up to the draws' 2^-24 granularity), and |q_i s_k - x_i| < s_k.
 * Sums of many such values stay unbiased; deterministic rounding would not.
 */
import { uniform } from './rng.ts';

/** The rng's `unit` reserved for stochastic rounding draws. */
export const QUANT_STREAM = 0xfffffffe;

/** The largest finite float16. */
export const F16_MAX = 65504;

/** A tensor that cannot be encoded or decoded; says which value and why. */
export class QuantError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'QuantError';
  }
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The float16 bit pattern nearest to x (ties to even); Infinity past the range, NaN kept. */
export function f16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
  if (exp > 112) {
    // normal in float16 (or overflow): drop 13 mantissa bits, round to nearest even;
    // a carry out of the mantissa bumps the exponent, up to 0x7c00 = Infinity
    let h = ((exp - 112) << 10) | (mant >>> 13);
    const rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h++;
    return h >= 0x7c00 ? sign | 0x7c00 : sign | h;
  }
  // subnormal in float16: value = m 2^-24 with m = M 2^(exp - 126), M the 24-bit significand
  const shift = 126 - exp;
  if (shift > 24) return sign;
  const full = mant | 0x800000;
  let m = full >>> shift;
  const rest = full & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rest > half || (rest === half && (m & 1) === 1)) m++;
  return sign | m; // m may reach 0x400, the smallest normal: the right pattern
}

/** The value of a float16 bit pattern. */
export function f16Value(h: number): number {
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  const s = h & 0x8000 ? -1 : 1;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m !== 0 ? NaN : s * Infinity;
  return s * (1024 + m) * 2 ** (e - 25);
}

let table: Float32Array | null = null;
/** All 65,536 float16 values, built once (256 KB): decoding is one load per value. */
function f16Table(): Float32Array {
  if (!table) {
    table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) table[h] = f16Value(h);
  }
  return table;
}

/** Encodes x as float16; refuses a non-finite value or one past float16's range, naming its index. */
export function encodeF16(x: Float32Array, out: Uint16Array = new Uint16Array(x.length)): Uint16Array {
  if (out.length !== x.length) throw new QuantError(`float16 output holds ${out.length} values, input has ${x.length}`);
  for (let i = 0; i < x.length; i++) {
    const h = f16Bits(x[i]!);
    if ((h & 0x7c00) === 0x7c00) {
      throw new QuantError(`value ${x[i]} at index ${i} is ${Number.isFinite(x[i]!) ? `outside float16's range (±${F16_MAX})` : 'not finite'}`);
    }
    out[i] = h;
  }
  return out;
}

/**
 * Decodes float16 values into `out` (or adds them to it with `add`), refusing
 * an infinity or NaN pattern (a well-behaved sender never writes one).
 */
export function decodeF16(h: Uint16Array, out: Float32Array = new Float32Array(h.length), add = false): Float32Array {
  if (out.length !== h.length) throw new QuantError(`float16 input has ${h.length} values, output holds ${out.length}`);
  const t = f16Table();
  for (let i = 0; i < h.length; i++) {
    const v = h[i]!;
    if ((v & 0x7c00) === 0x7c00) throw new QuantError(`float16 value at index ${i} is not finite`);
    if (add) out[i]! += t[v]!;
    else out[i] = t[v]!;
  }
  return out;
}

/** Where an int8 tensor's stochastic rounding draws come from. */
export interface RoundingSeed {
  /** e.g. the job seed mixed with the worker's task */
  readonly seed: number;
  /** e.g. the weights version or iteration */
  readonly stream: number;
  /** e.g. the tensor's index, so two tensors of one result draw differently */
  readonly tensor: number;
}

export interface Int8Blocks {
  /** n quantised values in [-127, 127] */
  readonly q: Int8Array;
  /** nb = ceil(n / blockSize) scales, finite and > 0 */
  readonly scales: Float32Array;
  readonly blockSize: number;
}

/** The number of blocks of n values. */
export function blockCount(n: number, blockSize: number): number {
  return Math.ceil(n / blockSize);
}

function checkBlockSize(blockSize: number): void {
  if (!Number.isInteger(blockSize) || blockSize < 1 || blockSize > 1 << 20) {
    throw new QuantError(`block size must be an integer in [1, 2^20], got ${blockSize}`);
  }
}

/**
 * Quantises x to int8 with one scale per block and stochastic rounding drawn
 * from `seed`. Refuses a non-finite value (naming its index).
 */
export function encodeInt8(x: Float32Array, blockSize: number, seed: RoundingSeed): Int8Blocks {
  checkBlockSize(blockSize);
  const n = x.length;
  const nb = blockCount(n, blockSize);
  const q = new Int8Array(n);
  const scales = new Float32Array(nb);
  // the draws' example counter is the element index, offset per tensor so that
  // two tensors of one result never share draws
  const salt = Math.imul(seed.tensor, 0x9e3779b1) >>> 0;
  for (let k = 0; k < nb; k++) {
    const lo = k * blockSize;
    const hi = Math.min(n, lo + blockSize);
    let max = 0;
    for (let i = lo; i < hi; i++) {
      const v = x[i]!;
      if (!Number.isFinite(v)) throw new QuantError(`value ${v} at index ${i} is not finite`);
      const a = Math.abs(v);
      if (a > max) max = a;
    }
    let s = Math.fround(max / 127);
    if (!(s > 0)) s = max > 0 ? 2 ** -149 : 1; // an all-zero block, or values below float32's resolution
    scales[k] = s;
    for (let i = lo; i < hi; i++) {
      const u = uniform(seed.seed, seed.stream, (i + salt) >>> 0, QUANT_STREAM);
      let r = Math.floor(x[i]! / s + u);
      if (r > 127) r = 127;
      else if (r < -127) r = -127;
      q[i] = r;
    }
  }
  return { q, scales, blockSize };
}

/**
 * Checks an int8 tensor received from someone else: the scale count matches
 * the value count, every scale is finite and > 0, every value is in
 * [-127, 127]. Throws a QuantError naming the first problem.
 */
export function checkInt8(t: Int8Blocks, n: number): void {
  checkBlockSize(t.blockSize);
  if (t.q.length !== n) throw new QuantError(`int8 tensor has ${t.q.length} values, expected ${n}`);
  const nb = blockCount(n, t.blockSize);
  if (t.scales.length !== nb) {
    throw new QuantError(`int8 tensor of ${n} values in blocks of ${t.blockSize} needs ${nb} scales, got ${t.scales.length}`);
  }
  for (let k = 0; k < nb; k++) {
    const s = t.scales[k]!;
    if (!(Number.isFinite(s) && s > 0)) throw new QuantError(`scale ${s} of block ${k} is not a finite positive number`);
  }
  for (let i = 0; i < n; i++) if (t.q[i] === -128) throw new QuantError(`value -128 at index ${i} is outside [-127, 127]`);
}

/** Dequantises into `out` (or adds to it with `add`: partial sums stay sums of dequantised values). */
export function decodeInt8(t: Int8Blocks, out: Float32Array = new Float32Array(t.q.length), add = false): Float32Array {
  checkInt8(t, out.length);
  const { q, scales, blockSize } = t;
  for (let k = 0; k < scales.length; k++) {
    const s = scales[k]!;
    const hi = Math.min(q.length, (k + 1) * blockSize);
    if (add) for (let i = k * blockSize; i < hi; i++) out[i]! += q[i]! * s;
    else for (let i = k * blockSize; i < hi; i++) out[i] = q[i]! * s;
  }
  return out;
}
