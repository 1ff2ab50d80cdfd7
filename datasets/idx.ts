/**
 * IDX, the file format of MNIST: a 4-byte big-endian magic number
 * 0x00 0x00 <type> <ndims>, then ndims big-endian uint32 dimension sizes,
 * then the values, big-endian, row-major. MNIST images are 0x00000803 (uint8,
 * N x rows x cols), labels 0x00000801 (uint8, N).
 *
 * parseIdx() reads untrusted bytes: it checks the magic number, the type, the
 * dimensions and the exact length, and throws DatasetError naming the file,
 * what it expected and what it found. Runtime-neutral (no node: imports).
 */
import { DatasetError, type Dataset } from '../core/dataset.ts';

export type IdxType = 'u8' | 'i8' | 'i16' | 'i32' | 'f32' | 'f64';
export type IdxData = Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;

export interface IdxArray {
  readonly type: IdxType;
  readonly dims: readonly number[];
  readonly data: IdxData;
}

/** What the caller needs; a file that differs is rejected. */
export interface IdxExpect {
  readonly type?: IdxType;
  readonly ndims?: number;
}

const TYPES: readonly { type: IdxType; code: number; bytes: number; label: string }[] = [
  { type: 'u8', code: 0x08, bytes: 1, label: 'uint8' },
  { type: 'i8', code: 0x09, bytes: 1, label: 'int8' },
  { type: 'i16', code: 0x0b, bytes: 2, label: 'int16' },
  { type: 'i32', code: 0x0c, bytes: 4, label: 'int32' },
  { type: 'f32', code: 0x0d, bytes: 4, label: 'float32' },
  { type: 'f64', code: 0x0e, bytes: 8, label: 'float64' },
];

const byType = (t: IdxType) => TYPES.find((x) => x.type === t)!;
const hex = (m: number) => '0x' + m.toString(16).padStart(8, '0');
const magicOf = (t: IdxType, ndims: number) => (byType(t).code << 8) | ndims;

/** The magic number an IDX file of this type and rank starts with, e.g. 0x00000803 for uint8 images. */
export function idxMagic(type: IdxType, ndims: number): number {
  return magicOf(type, ndims);
}

function describe(expect: IdxExpect | undefined): string {
  const t = expect?.type === undefined ? undefined : byType(expect.type);
  const n = expect?.ndims;
  if (t && n !== undefined) return `${hex(magicOf(t.type, n))} (${t.label}, ${n} dims)`;
  if (t) return `0x0000${t.code.toString(16).padStart(2, '0')}NN (${t.label}, NN dims)`;
  if (n !== undefined) return `0x0000TT${n.toString(16).padStart(2, '0')} (TT = data type, ${n} dims)`;
  return '0x0000TTNN (TT = data type, NN = number of dims)';
}

/** A guess at what a non-IDX file is, to make the error say what to do. */
function sniff(bytes: Uint8Array): string {
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) return '; it looks gzip-compressed: gunzip it first';
  if (bytes[0] === 0x3c) return '; it looks like an HTML/XML page: a failed download? fetch the file again';
  return '; is this really an MNIST-format file? fetch it again';
}

/** Parses and validates one IDX file; uint8 and int8 data are views into `bytes`, wider types are decoded copies. */
export function parseIdx(bytes: Uint8Array, name: string, expect?: IdxExpect): IdxArray {
  const fail = (msg: string): never => {
    throw new DatasetError(`${name}: ${msg}`);
  };
  if (bytes.length < 4) fail(`truncated: ${bytes.length} bytes, expected at least the 4-byte IDX magic number`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, false);
  const code = bytes[2]!;
  const ndims = bytes[3]!;
  const t = TYPES.find((x) => x.code === code);
  if (bytes[0] !== 0 || bytes[1] !== 0 || t === undefined) {
    fail(`not an IDX file: magic number ${hex(magic)}, expected ${describe(expect)}${sniff(bytes)}`);
  }
  const type = t!;
  if (expect?.type !== undefined && expect.type !== type.type) {
    fail(`magic number ${hex(magic)} means ${type.label} data, expected ${describe(expect)}`);
  }
  if (ndims === 0) fail(`magic number ${hex(magic)} declares 0 dimensions, expected at least 1`);
  if (expect?.ndims !== undefined && expect.ndims !== ndims) {
    fail(`magic number ${hex(magic)} means ${ndims} dims, expected ${describe(expect)}; images and labels swapped?`);
  }
  const head = 4 + 4 * ndims;
  if (bytes.length < head) fail(`truncated: ${bytes.length} bytes, the header of ${ndims} dims needs ${head}`);
  const dims: number[] = [];
  let count = 1;
  for (let i = 0; i < ndims; i++) {
    const d = view.getUint32(4 + 4 * i, false);
    dims.push(d);
    count *= d;
  }
  const need = count * type.bytes;
  const have = bytes.length - head;
  if (have < need) {
    fail(`truncated: dims [${dims.join(', ')}] of ${type.label} need ${need} data bytes, the file has ${have}; fetch it again`);
  }
  if (have > need) fail(`${have - need} trailing bytes after the ${need} data bytes of dims [${dims.join(', ')}]`);
  return { type: type.type, dims, data: decodeValues(bytes, view, head, count, type.type) };
}

function decodeValues(bytes: Uint8Array, view: DataView, at: number, n: number, type: IdxType): IdxData {
  switch (type) {
    case 'u8':
      return bytes.subarray(at, at + n);
    case 'i8':
      return new Int8Array(bytes.buffer, bytes.byteOffset + at, n);
    case 'i16': {
      const out = new Int16Array(n);
      for (let i = 0; i < n; i++) out[i] = view.getInt16(at + 2 * i, false);
      return out;
    }
    case 'i32': {
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) out[i] = view.getInt32(at + 4 * i, false);
      return out;
    }
    case 'f32': {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = view.getFloat32(at + 4 * i, false);
      return out;
    }
    case 'f64': {
      const out = new Float64Array(n);
      for (let i = 0; i < n; i++) out[i] = view.getFloat64(at + 8 * i, false);
      return out;
    }
  }
}

function typeOfData(data: IdxData): IdxType {
  if (data instanceof Uint8Array) return 'u8';
  if (data instanceof Int8Array) return 'i8';
  if (data instanceof Int16Array) return 'i16';
  if (data instanceof Int32Array) return 'i32';
  if (data instanceof Float32Array) return 'f32';
  return 'f64';
}

/** Encodes values as an IDX file; the type follows the typed array. */
export function encodeIdx(dims: readonly number[], data: IdxData): Uint8Array {
  if (dims.length < 1 || dims.length > 255) throw new DatasetError(`IDX needs 1 to 255 dims, got ${dims.length}`);
  if (!dims.every((d) => Number.isInteger(d) && d >= 0 && d <= 0xffffffff)) {
    throw new DatasetError(`IDX dims must be uint32 values, got [${dims.join(', ')}]`);
  }
  const count = dims.reduce((a, b) => a * b, 1);
  if (count !== data.length) throw new DatasetError(`dims [${dims.join(', ')}] hold ${count} values but data has ${data.length}`);
  const type = typeOfData(data);
  const size = byType(type).bytes;
  const head = 4 + 4 * dims.length;
  const out = new Uint8Array(head + count * size);
  const view = new DataView(out.buffer);
  view.setUint32(0, magicOf(type, dims.length), false);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  if (data instanceof Uint8Array || data instanceof Int8Array) {
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.length), head);
    return out;
  }
  for (let i = 0; i < count; i++) {
    const at = head + i * size;
    const v = data[i]!;
    if (type === 'i16') view.setInt16(at, v, false);
    else if (type === 'i32') view.setInt32(at, v, false);
    else if (type === 'f32') view.setFloat32(at, v, false);
    else view.setFloat64(at, v, false);
  }
  return out;
}

/** Parses an MNIST-style images file: uint8, N x rows x cols (magic 0x00000803). */
export function parseIdxImages(bytes: Uint8Array, name: string): IdxArray {
  return parseIdx(bytes, name, { type: 'u8', ndims: 3 });
}

/** Parses an MNIST-style labels file: uint8, N (magic 0x00000801). */
export function parseIdxLabels(bytes: Uint8Array, name: string): IdxArray {
  return parseIdx(bytes, name, { type: 'u8', ndims: 1 });
}

/**
 * Joins a uint8 N x rows x cols images array and a uint8 N labels array into a
 * Dataset (sharing their memory); throws if the shapes or the counts differ.
 */
export function pairImagesLabels(images: IdxArray, labels: IdxArray, imagesName = 'images', labelsName = 'labels'): Dataset {
  if (images.type !== 'u8' || images.dims.length !== 3) {
    throw new DatasetError(`${imagesName}: ${images.type} with ${images.dims.length} dims, expected uint8 images N x rows x cols`);
  }
  if (labels.type !== 'u8' || labels.dims.length !== 1) {
    throw new DatasetError(`${labelsName}: ${labels.type} with ${labels.dims.length} dims, expected uint8 labels N`);
  }
  const [count, rows, cols] = images.dims as [number, number, number];
  if (labels.dims[0] !== count) {
    throw new DatasetError(
      `${imagesName} holds ${count} images but ${labelsName} holds ${labels.dims[0]} labels; expected the same count (mixed up train and test files?)`,
    );
  }
  return { images: images.data as Uint8Array, labels: labels.data as Uint8Array, count, rows, cols, dim: rows * cols };
}
