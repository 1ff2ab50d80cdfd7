/**
 * safetensors, the standard format: an 8-byte little-endian header length N,
 * N bytes of JSON header ({name: {dtype, shape, data_offsets: [begin, end]}},
 * plus an optional "__metadata__" map of strings), then the little-endian
 * tensor data. Used for checkpoints, weight broadcasts and uploaded results.
 *
 * decode() reads untrusted bytes: it checks every field and offset and throws
 * SafetensorsError naming what was wrong; it never reads out of bounds.
 */

/** F16 travels as its raw bit patterns (Uint16Array; quant.ts decodes them), I8 as Int8Array. */
export type DType = 'F32' | 'F64' | 'F16' | 'U8' | 'I8' | 'U32' | 'I32';

const DTYPE_BYTES: Record<DType, number> = { F32: 4, F64: 8, F16: 2, U8: 1, I8: 1, U32: 4, I32: 4 };

export type TensorData = Float32Array | Float64Array | Uint16Array | Uint8Array | Int8Array | Uint32Array | Int32Array;

export interface Tensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: TensorData;
}

export interface SafeTensors {
  readonly tensors: Map<string, Tensor>;
  readonly metadata: Record<string, string>;
}

export class SafetensorsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SafetensorsError';
  }
}

function dtypeOf(data: TensorData): DType {
  if (data instanceof Float32Array) return 'F32';
  if (data instanceof Float64Array) return 'F64';
  if (data instanceof Uint16Array) return 'F16';
  if (data instanceof Uint8Array) return 'U8';
  if (data instanceof Int8Array) return 'I8';
  if (data instanceof Uint32Array) return 'U32';
  return 'I32';
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Encodes tensors (in the given order) and string metadata; into `into` (a
 * view of its first bytes is returned) when it is large enough.
 */
export function encodeSafetensors(
  tensors: Iterable<[string, { shape: readonly number[]; data: TensorData }]>,
  metadata: Record<string, string> = {},
  into?: Uint8Array,
): Uint8Array {
  if (!LITTLE_ENDIAN) throw new SafetensorsError('big-endian hosts are not supported');
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  const parts: { data: TensorData; begin: number }[] = [];
  let offset = 0;
  for (const [name, t] of tensors) {
    if (name === '__metadata__') throw new SafetensorsError('"__metadata__" is not a valid tensor name');
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) {
      throw new SafetensorsError(`tensor "${name}": shape [${t.shape}] holds ${count} values but data has ${t.data.length}`);
    }
    const dtype = dtypeOf(t.data);
    const end = offset + t.data.byteLength;
    header[name] = { dtype, shape: [...t.shape], data_offsets: [offset, end] };
    parts.push({ data: t.data, begin: offset });
    offset = end;
  }
  let json = JSON.stringify(header);
  // Pad the header with spaces so the data starts 8-byte aligned (allowed by the spec).
  const pad = (8 - ((8 + new TextEncoder().encode(json).length) % 8)) % 8;
  json += ' '.repeat(pad);
  const head = new TextEncoder().encode(json);
  // Into the caller's buffer when it is large enough: reused memory is written
  // several times faster than fresh pages, which the OS must first map in.
  const size = 8 + head.length + offset;
  const out = into && into.length >= size ? into.subarray(0, size) : new Uint8Array(size);
  const view = new DataView(out.buffer, out.byteOffset, 8);
  view.setUint32(0, head.length, true);
  view.setUint32(4, 0, true);
  out.set(head, 8);
  const base = 8 + head.length;
  for (const p of parts) out.set(new Uint8Array(p.data.buffer, p.data.byteOffset, p.data.byteLength), base + p.begin);
  return out;
}

export interface DecodeOptions {
  /** Largest header accepted, in bytes (default 1 MiB). */
  readonly maxHeaderBytes?: number;
  /** Context for error messages, e.g. a file name. */
  readonly source?: string;
}

/** Where one tensor's bytes lie in a checked buffer. */
export interface TensorSpan {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** byte offsets into `bytes`, absolute */
  readonly begin: number;
  readonly end: number;
}

/**
 * Checks the structure of an untrusted safetensors buffer (header bounds,
 * UTF-8 JSON, metadata strings, known dtypes, shapes matching byte lengths,
 * offsets contiguous and exactly covering the data) without copying any
 * tensor. Throws SafetensorsError naming the problem. The one parser of
 * untrusted safetensors: decodeSafetensors and the wire protocol build on it.
 */
export function parseSafetensors(bytes: Uint8Array, opts: DecodeOptions = {}): { metadata: Record<string, string>; spans: TensorSpan[] } {
  const where = opts.source ? `${opts.source}: ` : '';
  const fail = (msg: string): never => {
    throw new SafetensorsError(`${where}${msg}`);
  };
  const maxHeader = opts.maxHeaderBytes ?? 1 << 20;
  if (bytes.length < 8) fail(`truncated: ${bytes.length} bytes, expected at least the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const hi = view.getUint32(4, true);
  const n = view.getUint32(0, true);
  if (hi !== 0 || n > maxHeader) fail(`header length ${hi * 2 ** 32 + n} exceeds the ${maxHeader}-byte limit`);
  if (8 + n > bytes.length) fail(`truncated: header says ${n} bytes of JSON but only ${bytes.length - 8} follow`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (e) {
    fail(`header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail('header is not a JSON object');
  const entries = header as Record<string, unknown>;
  const base = 8 + n;
  const dataLen = bytes.length - base;
  const metadata: Record<string, string> = {};
  const spans: TensorSpan[] = [];
  for (const [name, v] of Object.entries(entries)) {
    if (name === '__metadata__') {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) fail('"__metadata__" must be an object of strings');
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        if (typeof x !== 'string') fail(`metadata "${k}" must be a string`);
        metadata[k] = x as string;
      }
      continue;
    }
    if (typeof v !== 'object' || v === null) fail(`tensor "${name}": entry is not an object`);
    const e = v as Record<string, unknown>;
    const dtype = e.dtype;
    if (typeof dtype !== 'string' || !Object.hasOwn(DTYPE_BYTES, dtype)) fail(`tensor "${name}": unsupported dtype ${JSON.stringify(dtype)}`);
    const shape = e.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(`tensor "${name}": shape must be an array of non-negative integers`);
    }
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(`tensor "${name}": data_offsets must be two non-negative integers`);
    }
    const [begin, end] = offs as [number, number];
    if (begin > end || end > dataLen) {
      fail(`tensor "${name}": data_offsets [${begin}, ${end}] fall outside the ${dataLen} data bytes (truncated file?)`);
    }
    const count = (shape as number[]).reduce((a, b) => a * b, 1);
    const size = DTYPE_BYTES[dtype as DType];
    if (count * size !== end - begin) {
      fail(`tensor "${name}": shape [${shape}] of ${dtype} needs ${count * size} bytes, offsets give ${end - begin}`);
    }
    spans.push({ name, begin: base + begin, end: base + end, dtype: dtype as DType, shape: shape as number[] });
  }
  spans.sort((a, b) => a.begin - b.begin);
  let cursor = base;
  for (const s of spans) {
    if (s.begin !== cursor) fail(`tensor "${s.name}": data starts at ${s.begin - base}, expected ${cursor - base} (overlap or gap)`);
    cursor = s.end;
  }
  if (cursor !== bytes.length) fail(`${bytes.length - cursor} bytes after the last tensor (expected none)`);
  return { metadata, spans };
}

/**
 * A span's data as a typed array. `view`: a view of `bytes` where the data is
 * aligned for its type (no copy; it aliases the buffer), else a copy.
 */
export function tensorData(bytes: Uint8Array, span: TensorSpan, view = false): TensorData {
  const size = DTYPE_BYTES[span.dtype];
  const at = bytes.byteOffset + span.begin;
  const aligned = view && at % size === 0;
  const buf = aligned ? bytes.buffer : bytes.slice(span.begin, span.end).buffer;
  const off = aligned ? at : 0;
  const len = (span.end - span.begin) / size;
  switch (span.dtype) {
    case 'F32': return new Float32Array(buf, off, len);
    case 'F64': return new Float64Array(buf, off, len);
    case 'U32': return new Uint32Array(buf, off, len);
    case 'I32': return new Int32Array(buf, off, len);
    case 'F16': return new Uint16Array(buf, off, len);
    case 'U8': return new Uint8Array(buf, off, len);
    case 'I8': return new Int8Array(buf, off, len);
  }
}

/** Decodes and validates a safetensors buffer. Tensor data is copied into fresh, aligned arrays. */
export function decodeSafetensors(bytes: Uint8Array, opts: DecodeOptions = {}): SafeTensors {
  const { metadata, spans } = parseSafetensors(bytes, opts);
  const tensors = new Map<string, Tensor>();
  for (const s of spans) tensors.set(s.name, { dtype: s.dtype, shape: s.shape, data: tensorData(bytes, s) });
  return { tensors, metadata };
}
