/**
 * The count-sketch that checks peer-to-peer partial sums end to end, and its
 * wire format (the report a leaf sends the coordinator directly).
 *
 * Shapes: D = floats of every gradient the phase trains, concatenated in the
 * result's tensor order (phaseTensors); B = buckets (a power of two). A seed
 * (32 hex digits, 128 secret bits from the coordinator) picks for every
 * coordinate j a bucket h(j) in [0, B) and a sign s(j) in {-1, +1};
 *
 *   sketch(x)[b] = sum over j with h(j) = b of s(j) x[j]       (float64)
 *   mass(x)[b]   = sum over j with h(j) = b of |x[j]|
 *
 * sketch is linear: the sketch of an honest partial P = g_1 + ... + g_m
 * equals the sum of its leaves' sketches, up to the float32 rounding of the
 * sum (at most (m - 1) 2^-24 mass per bucket, summed sequentially or as a
 * tree); mass bounds that rounding, so the check has no false positives.
 * A forger who does not know the seed cannot aim a change v != 0 at the
 * sketch's null space: v passes only where its entries cancel, under
 * random signs, within every bucket they fall in (below the rounding bound).
 */
import { ProtocolError } from './results.ts';

/** Buckets of a sketch unless the coordinator says otherwise. */
export const SKETCH_BUCKETS = 2048;
export const SEED_PATTERN = /^[0-9a-f]{32}$/;
const U = 2 ** -24;

export interface Sketch {
  /** B signed bucket sums */
  readonly values: Float64Array;
  /** B bucket sums of magnitudes (rounding bound) */
  readonly mass: Float64Array;
}

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function keys(seed: string): [number, number, number, number] {
  if (!SEED_PATTERN.test(seed)) throw new RangeError(`sketch seed must be 32 lowercase hex digits, got ${JSON.stringify(seed)}`);
  return [0, 8, 16, 24].map((i) => parseInt(seed.slice(i, i + 8), 16) >>> 0) as [number, number, number, number];
}

/** The count-sketch of tensors taken in order as one vector (see the file's comment). */
export function sketchTensors(tensors: Iterable<Float32Array>, seed: string, buckets = SKETCH_BUCKETS): Sketch {
  if (!Number.isInteger(Math.log2(buckets)) || buckets < 16 || buckets > 1 << 20) throw new RangeError(`sketch buckets must be a power of two in [16, 2^20], got ${buckets}`);
  const [k0, k1, k2, k3] = keys(seed);
  const mask = buckets - 1;
  const values = new Float64Array(buckets);
  const mass = new Float64Array(buckets);
  let j = 0;
  for (const t of tensors) {
    for (let i = 0; i < t.length; i++, j++) {
      const x = t[i]!;
      const b = fmix32((fmix32(j ^ k0) + k1) >>> 0) & mask;
      const neg = fmix32((fmix32(j ^ k2) + k3) >>> 0) & 1;
      values[b]! += neg ? -x : x;
      mass[b]! += Math.abs(x);
    }
  }
  return { values, mass };
}

/** a + b, element-wise, as a new sketch (same bucket count). */
export function addSketches(a: Sketch, b: Sketch): Sketch {
  if (a.values.length !== b.values.length) throw new RangeError(`sketches of ${a.values.length} and ${b.values.length} buckets`);
  const values = new Float64Array(a.values.length);
  const mass = new Float64Array(a.values.length);
  for (let i = 0; i < values.length; i++) {
    values[i] = a.values[i]! + b.values[i]!;
    mass[i] = a.mass[i]! + b.mass[i]!;
  }
  return { values, mass };
}

/**
 * Does `partial` (the sketch of a received partial sum) equal `leaves` (the
 * sum of its m leaves' sketches) within the rounding of an m-term float32
 * sum? null when it does; else the first bucket that differs.
 */
export function compareSketch(partial: Sketch, leaves: Sketch, m: number): { bucket: number; got: number; expected: number; tolerance: number } | null {
  if (partial.values.length !== leaves.values.length) return { bucket: -1, got: partial.values.length, expected: leaves.values.length, tolerance: 0 };
  // 2 (m + 1) u: the sum's own rounding plus the float64 sketch's, with room to spare
  const rel = 2 * (m + 1) * U;
  for (let b = 0; b < partial.values.length; b++) {
    const got = partial.values[b]!;
    const expected = leaves.values[b]!;
    const tolerance = rel * Math.max(leaves.mass[b]!, partial.mass[b]!) + 1e-30;
    if (!(Math.abs(got - expected) <= tolerance)) return { bucket: b, got, expected, tolerance };
  }
  return null;
}

/**
 * What a leaf of a tree sends the coordinator directly before it hands its
 * result to its parent: which leases the result answers, its scalars, and
 * two sketches of its gradients: `tree` with the seed of the partial check
 * (the coordinator gives it to the leaves of a tree, never to a node that
 * forwards sums), `own` with the leaf's own seed (for recomputation checks).
 */
export interface SketchReport {
  readonly treeId: string;
  readonly leaseIds: readonly string[];
  readonly count: number;
  readonly loss: number;
  readonly correct: number;
  readonly tree: Sketch;
  readonly own: Sketch;
}

const MAGIC = 0x54534b31; // "TSK1"
export const MAX_SKETCH_REPORT_BYTES = 4 * 1024 * 1024;

/** Binary: u32 magic, u32 JSON length, JSON {treeId, leaseIds, count, loss, correct, buckets}, padding to 8, then tree.values, tree.mass, own.values, own.mass (f64, little-endian). */
export function encodeSketchReport(r: SketchReport): Uint8Array {
  const B = r.tree.values.length;
  for (const a of [r.tree.mass, r.own.values, r.own.mass]) if (a.length !== B) throw new RangeError('sketch report: sketches of different bucket counts');
  const json = new TextEncoder().encode(JSON.stringify({ treeId: r.treeId, leaseIds: r.leaseIds, count: r.count, loss: r.loss, correct: r.correct, buckets: B }));
  const head = (8 + json.length + 7) & ~7;
  const out = new Uint8Array(head + 4 * 8 * B);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, MAGIC, true);
  dv.setUint32(4, json.length, true);
  out.set(json, 8);
  let o = head;
  for (const a of [r.tree.values, r.tree.mass, r.own.values, r.own.mass]) {
    for (let i = 0; i < B; i++, o += 8) dv.setFloat64(o, a[i]!, true);
  }
  return out;
}

/** Decodes an untrusted report; ProtocolError('bad-request') says what is wrong. */
export function decodeSketchReport(bytes: Uint8Array): SketchReport {
  const bad = (msg: string): never => {
    throw new ProtocolError('bad-request', `sketch report: ${msg}`);
  };
  if (bytes.length < 8 || bytes.length > MAX_SKETCH_REPORT_BYTES) bad(`${bytes.length} bytes; expected 8 to ${MAX_SKETCH_REPORT_BYTES}`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dv.getUint32(0, true) !== MAGIC) bad('wrong magic number: not a sketch report (encodeSketchReport)');
  const n = dv.getUint32(4, true);
  if (8 + n > bytes.length || n > 64 * 1024) bad(`header of ${n} bytes does not fit`);
  let h: Record<string, unknown>;
  try {
    h = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n))) as Record<string, unknown>;
  } catch {
    return bad('header is not JSON');
  }
  if (typeof h !== 'object' || h === null) bad('header is not an object');
  const B = h.buckets;
  if (typeof B !== 'number' || !Number.isInteger(Math.log2(B)) || B < 16 || B > 1 << 20) bad(`"buckets" must be a power of two in [16, 2^20], got ${JSON.stringify(B)}`);
  if (typeof h.treeId !== 'string' || !/^[0-9a-zA-Z-]{1,64}$/.test(h.treeId)) bad('"treeId" must be an id of 1-64 letters, digits or dashes');
  const ids = h.leaseIds;
  if (!Array.isArray(ids) || ids.length < 1 || ids.length > 64 || ids.some((x) => typeof x !== 'string' || !/^[0-9a-zA-Z-]{1,64}$/.test(x))) bad('"leaseIds" must list 1-64 lease ids');
  if (typeof h.count !== 'number' || !Number.isSafeInteger(h.count) || h.count < 0) bad('"count" must be a non-negative integer');
  if (typeof h.correct !== 'number' || !Number.isSafeInteger(h.correct) || h.correct < 0 || h.correct > (h.count as number)) bad('"correct" must be an integer in [0, count]');
  if (typeof h.loss !== 'number' || !Number.isFinite(h.loss) || h.loss < 0) bad('"loss" must be a finite number >= 0');
  const head = (8 + n + 7) & ~7;
  const buckets = B as number;
  if (bytes.length !== head + 32 * buckets) bad(`${bytes.length} bytes, expected ${head + 32 * buckets} for ${buckets} buckets`);
  const arrays: Float64Array[] = [];
  let o = head;
  for (let k = 0; k < 4; k++) {
    const a = new Float64Array(buckets);
    for (let i = 0; i < buckets; i++, o += 8) {
      const x = dv.getFloat64(o, true);
      if (!Number.isFinite(x) || (k % 2 === 1 && x < 0)) bad(`${['tree values', 'tree mass', 'own values', 'own mass'][k]}[${i}] is ${x}`);
      a[i] = x;
    }
    arrays.push(a);
  }
  return {
    treeId: h.treeId as string,
    leaseIds: ids as string[],
    count: h.count as number,
    loss: h.loss as number,
    correct: h.correct as number,
    tree: { values: arrays[0]!, mass: arrays[1]! },
    own: { values: arrays[2]!, mass: arrays[3]! },
  };
}
