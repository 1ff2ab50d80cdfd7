/**
 * The partition blob: one partition of the training set (examples [lo, hi)),
 * shipped to workers as one immutable, content-addressed blob. The
 * coordinator encodes (datasets/partition.ts cuts the data set); Deno and
 * browser workers decode. Runtime-neutral.
 *
 * Blob layout, little-endian, version 1 (N = count, D = dim):
 *   0  4  magic "TSPT"
 *   4  4  u32 format version
 *   8  4  u32 partition index
 *  12  4  u32 lo, the first global example index
 *  16  4  u32 hi, one past the last (hi - lo = N)
 *  20  4  u32 N
 *  24  4  u32 D
 *  28 ND  u8 pixels, example after example
 *  .. N   u8 labels
 */
import { DatasetError } from '../dataset.ts';

export const PARTITION_MAGIC = 'TSPT';
export const PARTITION_VERSION = 1;
export const PARTITION_HEADER_BYTES = 28;

/** One partition: examples [lo, hi) of the training set. */
export interface Partition {
  readonly index: number;
  /** first global example index */
  readonly lo: number;
  /** one past the last global example index */
  readonly hi: number;
  /** N = hi - lo */
  readonly count: number;
  /** D, pixels per example */
  readonly dim: number;
  /** N x D pixel intensities 0..255 */
  readonly pixels: Uint8Array;
  /** N labels */
  readonly labels: Uint8Array;
}

function checkU32(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new DatasetError(`partition ${name} ${v} is not a u32`);
}

/** The partition as one blob (header, pixels, labels). */
export function encodePartition(part: Partition): Uint8Array {
  const { index, lo, hi, count, dim } = part;
  for (const [k, v] of Object.entries({ index, lo, hi, count, dim })) checkU32(k, v);
  if (hi - lo !== count) throw new DatasetError(`partition ${index}: [${lo}, ${hi}) holds ${hi - lo} examples, count says ${count}`);
  if (part.pixels.length !== count * dim || part.labels.length !== count) {
    throw new DatasetError(
      `partition ${index}: ${part.pixels.length} pixels and ${part.labels.length} labels, expected ${count * dim} and ${count}`,
    );
  }
  const out = new Uint8Array(PARTITION_HEADER_BYTES + count * dim + count);
  const view = new DataView(out.buffer);
  for (let i = 0; i < 4; i++) out[i] = PARTITION_MAGIC.charCodeAt(i);
  [PARTITION_VERSION, index, lo, hi, count, dim].forEach((v, i) => view.setUint32(4 + 4 * i, v, true));
  out.set(part.pixels, PARTITION_HEADER_BYTES);
  out.set(part.labels, PARTITION_HEADER_BYTES + count * dim);
  return out;
}

/**
 * Decodes and validates a partition blob (untrusted bytes); pixels and labels
 * are views into `bytes`. `name` prefixes error messages.
 */
export function decodePartition(bytes: Uint8Array, name = 'partition blob'): Partition {
  const fail = (msg: string): never => {
    throw new DatasetError(`${name}: ${msg}`);
  };
  if (bytes.length < PARTITION_HEADER_BYTES) {
    fail(`truncated: ${bytes.length} bytes, expected at least the ${PARTITION_HEADER_BYTES}-byte header`);
  }
  const magic = String.fromCharCode(bytes[0]!, bytes[1]!, bytes[2]!, bytes[3]!);
  if (magic !== PARTITION_MAGIC) {
    fail(`wrong magic ${JSON.stringify(magic)}, expected "${PARTITION_MAGIC}": not a Tessera partition (an error page?)`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const [version, index, lo, hi, count, dim] = [0, 1, 2, 3, 4, 5].map((i) => view.getUint32(4 + 4 * i, true)) as [
    number, number, number, number, number, number,
  ];
  if (version !== PARTITION_VERSION) {
    fail(`format version ${version}, this build reads version ${PARTITION_VERSION}; update the worker or the coordinator`);
  }
  if (hi < lo || hi - lo !== count) fail(`inconsistent header: range [${lo}, ${hi}) but count ${count}`);
  const need = PARTITION_HEADER_BYTES + count * dim + count;
  if (bytes.length < need) fail(`truncated: ${bytes.length} bytes, ${count} examples of ${dim} pixels need ${need}`);
  if (bytes.length > need) fail(`${bytes.length - need} trailing bytes after the ${need} the header accounts for`);
  const at = PARTITION_HEADER_BYTES;
  return {
    index,
    lo,
    hi,
    count,
    dim,
    pixels: bytes.subarray(at, at + count * dim),
    labels: bytes.subarray(at + count * dim, need),
  };
}
