/**
 * Float32 tensors in a wire encoding inside safetensors (results, deltas,
 * weight deltas), one layout for every body format:
 *   f32:  "<name>" F32[shape]
 *   f16:  "<name>" F16[shape]                       (quant.ts, round to nearest even)
 *   int8: "<name>" I8[shape] and "<name>:scale" F32[nb], nb = ceil(n / blockSize)
 * with the encoding (and the block size) in the body's metadata.
 *
 * Stochastic rounding draws of tensor i come from (seed, stream, i): the
 * sender names them (e.g. job seed ^ partition, round), so an encoded upload
 * is still a pure function of the task.
 *
 * readEncoded() checks untrusted bytes completely before anything is used:
 * each expected tensor present (or, for partial bodies, absent), nothing
 * else, dtypes of the encoding, shapes, the scale count of every int8 tensor,
 * every scale finite and > 0, no -128 and no float16 infinity or NaN.
 */
import { checkInt8, decodeF16, decodeInt8, encodeF16, encodeInt8, QuantError, type Int8Blocks, type RoundingSeed } from '../quant.ts';
import { encodeSafetensors, parseSafetensors, tensorData, type TensorData, type TensorSpan } from '../safetensors.ts';
import type { TensorEncoding } from '../model/training.ts';

export const SCALE_SUFFIX = ':scale';

/** Why an encoded body is refused; `code` is the coordinator's ErrorCode for it. */
export class EncodingError extends Error {
  constructor(readonly code: 'malformed-result' | 'shape-mismatch' | 'non-finite' | 'bad-scale' | 'wrong-encoding' | 'wrong-mode', detail: string) {
    super(detail);
    this.name = 'EncodingError';
  }
}

/** One received tensor, still encoded (views of the body where aligned). */
export type EncodedTensor =
  | { readonly encoding: 'f32'; readonly data: Float32Array }
  | { readonly encoding: 'f16'; readonly data: Uint16Array }
  | { readonly encoding: 'int8'; readonly blocks: Int8Blocks };

/** Stochastic rounding's (seed, stream) for a body; the tensor index is added per tensor. */
export interface BodySeed {
  readonly seed: number;
  readonly stream: number;
}

/** Mixes a partition index into a job seed: different partitions of one round draw differently. */
export function taskSeed(jobSeed: number, partition: number): number {
  return (jobSeed ^ Math.imul(partition + 1, 0x85ebca6b)) >>> 0;
}

/**
 * Safetensors entries for `tensors` (in order; tensor i rounds with
 * (seed, stream, i)) in `encoding`. f32 entries are the caller's arrays, not copies.
 */
export function encodedEntries(
  tensors: Iterable<readonly [string, Float32Array]>,
  shapes: ReadonlyMap<string, readonly number[]>,
  encoding: TensorEncoding,
  blockSize: number,
  seed: BodySeed,
): [string, { shape: readonly number[]; data: TensorData }][] {
  const out: [string, { shape: readonly number[]; data: TensorData }][] = [];
  let i = 0;
  for (const [name, x] of tensors) {
    const shape = shapes.get(name);
    if (!shape) throw new Error(`encodedEntries: no shape for "${name}"`);
    if (encoding === 'f32') out.push([name, { shape, data: x }]);
    else if (encoding === 'f16') out.push([name, { shape, data: encodeF16(x) }]);
    else {
      const rs: RoundingSeed = { seed: seed.seed, stream: seed.stream, tensor: i };
      const b = encodeInt8(x, blockSize, rs);
      out.push([name, { shape, data: b.q }], [`${name}${SCALE_SUFFIX}`, { shape: [b.scales.length], data: b.scales }]);
    }
    i++;
  }
  return out;
}

const DTYPE_OF: Record<TensorEncoding, string> = { f32: 'F32', f16: 'F16', int8: 'I8' };

/**
 * Reads the tensors of `expected` (name -> shape) from checked spans of
 * `bytes` in `encoding`. `partial`: an expected tensor may be absent (a
 * weights delta sends only what changed). Throws EncodingError.
 */
export function readEncoded(
  bytes: Uint8Array,
  spans: readonly TensorSpan[],
  expected: ReadonlyMap<string, readonly number[]>,
  encoding: TensorEncoding,
  blockSize: number,
  what = 'body',
  partial = false,
): Map<string, EncodedTensor> {
  const byName = new Map(spans.map((s) => [s.name, s]));
  const used = new Set<string>();
  const out = new Map<string, EncodedTensor>();
  const dtype = DTYPE_OF[encoding];
  for (const [name, shape] of expected) {
    const sp = byName.get(name);
    if (!sp) {
      if (partial) continue;
      throw new EncodingError('shape-mismatch', `${what} lacks tensor "${name}" (${dtype}[${shape}])`);
    }
    used.add(name);
    if (sp.dtype !== dtype) {
      throw new EncodingError(sp.dtype === 'F32' || sp.dtype === 'F16' || sp.dtype === 'I8' ? 'wrong-encoding' : 'shape-mismatch',
        `tensor "${name}" is ${sp.dtype}, this job's ${what} encoding ${encoding} sends ${dtype}`);
    }
    if (sp.shape.join('x') !== shape.join('x')) throw new EncodingError('shape-mismatch', `tensor "${name}" is ${sp.dtype}[${sp.shape}], expected ${dtype}[${shape}]`);
    if (encoding === 'f32') {
      out.set(name, { encoding, data: tensorData(bytes, sp, true) as Float32Array });
      continue;
    }
    if (encoding === 'f16') {
      const data = tensorData(bytes, sp, true) as Uint16Array;
      for (let i = 0; i < data.length; i++) {
        if ((data[i]! & 0x7c00) === 0x7c00) throw new EncodingError('non-finite', `tensor "${name}" holds a float16 infinity or NaN at index ${i}`);
      }
      out.set(name, { encoding, data });
      continue;
    }
    const scaleName = `${name}${SCALE_SUFFIX}`;
    const ss = byName.get(scaleName);
    const n = sp.end - sp.begin;
    const nb = Math.ceil(n / blockSize);
    if (!ss) throw new EncodingError('shape-mismatch', `int8 tensor "${name}" lacks its scales "${scaleName}" (F32[${nb}])`);
    used.add(scaleName);
    if (ss.dtype !== 'F32' || ss.shape.length !== 1 || ss.shape[0] !== nb) {
      throw new EncodingError('shape-mismatch', `"${scaleName}" is ${ss.dtype}[${ss.shape}]: ${n} values in blocks of ${blockSize} need F32[${nb}]`);
    }
    const blocks: Int8Blocks = { q: tensorData(bytes, sp, true) as Int8Array, scales: tensorData(bytes, ss, true) as Float32Array, blockSize };
    for (let k = 0; k < nb; k++) {
      const s = blocks.scales[k]!;
      if (!Number.isFinite(s)) throw new EncodingError('non-finite', `scale ${s} of block ${k} of "${name}" is not finite`);
      if (!(s > 0)) throw new EncodingError('bad-scale', `scale ${s} of block ${k} of "${name}" is not positive`);
    }
    try {
      checkInt8(blocks, n);
    } catch (e) {
      if (e instanceof QuantError) throw new EncodingError('bad-scale', `tensor "${name}": ${e.message}`);
      throw e;
    }
    out.set(name, { encoding, blocks });
  }
  for (const name of byName.keys()) {
    if (!used.has(name)) throw new EncodingError('shape-mismatch', `unexpected tensor "${name}" in ${what} (expected ${[...expected.keys()].join(', ')})`);
  }
  return out;
}

/** The float32 values of a received tensor into `out` (or added to it with `add`); f32 without `out` is the view itself. */
export function dequantize(t: EncodedTensor, out?: Float32Array, add = false): Float32Array {
  if (t.encoding === 'f32') {
    if (!out) return t.data;
    if (add) for (let i = 0; i < out.length; i++) out[i] = out[i]! + t.data[i]!;
    else out.set(t.data);
    return out;
  }
  if (t.encoding === 'f16') return decodeF16(t.data, out ?? new Float32Array(t.data.length), add);
  return decodeInt8(t.blocks, out ?? new Float32Array(t.blocks.q.length), add);
}

/** Bytes a tensor of n values takes in an encoding (for bandwidth figures). */
export function encodedBytes(n: number, encoding: TensorEncoding, blockSize: number): number {
  if (encoding === 'f32') return 4 * n;
  if (encoding === 'f16') return 2 * n;
  return n + 4 * Math.ceil(n / blockSize);
}

/**
 * What the receiver gets from `tensors` sent in `encoding`: encoded into a
 * body, checked and decoded as the coordinator does (f32: the arrays
 * themselves), and the tensor bytes that travelled (without the header). The
 * in-process trainer uses it to train on the same bits.
 */
export function roundTrip(
  tensors: ReadonlyMap<string, Float32Array>,
  shapes: ReadonlyMap<string, readonly number[]>,
  encoding: TensorEncoding,
  blockSize: number,
  seed: BodySeed,
): { values: Map<string, Float32Array>; bytes: number } {
  if (encoding === 'f32') return { values: new Map(tensors), bytes: [...tensors.values()].reduce((n, t) => n + 4 * t.length, 0) };
  const expected = new Map([...tensors.keys()].map((n) => [n, shapes.get(n)!]));
  const body = encodeSafetensors(encodedEntries(tensors, shapes, encoding, blockSize, seed));
  const { spans } = parseSafetensors(body);
  const got = readEncoded(body, spans, expected, encoding, blockSize);
  return { values: new Map([...got].map(([n, t]) => [n, dequantize(t)])), bytes: spans.reduce((n, s) => n + s.end - s.begin, 0) };
}
