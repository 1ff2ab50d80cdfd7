/**
 * A task result on the wire: safetensors with one F32 tensor per gradient the
 * phase trains (named as in params.ts, shapes as in tensorShapes), and the
 * accounting in `__metadata__` (all strings, as safetensors requires).
 * decodeResult is the zero-copy check of untrusted bytes the coordinator's
 * intake runs first.
 */
import { encodeSafetensors, parseSafetensors, SafetensorsError, tensorData } from '../safetensors.ts';
import { MAX_TASKS_PER_REQUEST, type ErrorCode } from './messages.ts';
import { PROTOCOL_VERSION } from './paths.ts';

/** Metadata of a result upload. */
export interface ResultMeta {
  readonly taskId: string;
  readonly leaseId: string;
  readonly weightsVersion: number;
  /** examples summed: of every task the result answers */
  readonly count: number;
  readonly loss: number;
  readonly correct: number;
  /** the other leases this result answers (LeaseResponse.more), summed in */
  readonly bundle?: readonly string[];
}

export const RESULT_FORMAT = 'tessera-result';

/** A decoding failure: the ErrorCode the coordinator answers with and a detail for people. */
export class ProtocolError extends Error {
  constructor(readonly code: ErrorCode, detail: string) {
    super(detail);
    this.name = 'ProtocolError';
  }
}

/** Encodes a task result: gradients in the given order (phaseTensors order), shapes from `shapes`; into `into` when it is large enough. */
export function encodeResult(
  meta: ResultMeta,
  grads: ReadonlyMap<string, Float32Array>,
  shapes: ReadonlyMap<string, readonly number[]>,
  into?: Uint8Array,
): Uint8Array {
  const entries: [string, { shape: readonly number[]; data: Float32Array }][] = [];
  for (const [name, g] of grads) {
    const shape = shapes.get(name);
    if (!shape) throw new Error(`encodeResult: no shape for gradient "${name}"`);
    entries.push([name, { shape, data: g }]);
  }
  return encodeSafetensors(entries, {
    format: RESULT_FORMAT,
    protocol: String(PROTOCOL_VERSION),
    taskId: meta.taskId,
    leaseId: meta.leaseId,
    weightsVersion: String(meta.weightsVersion),
    count: String(meta.count),
    loss: String(meta.loss),
    correct: String(meta.correct),
    ...(meta.bundle?.length ? { bundle: meta.bundle.join(',') } : {}),
  }, into);
}

export interface DecodedResult {
  readonly meta: ResultMeta;
  readonly grads: Map<string, Float32Array>;
}

/**
 * Decodes an untrusted result body without copying its tensors: each
 * gradient is a Float32Array view of `bytes` (a copy only where the data is
 * not 4-byte aligned). Checks the safetensors structure (parseSafetensors),
 * the metadata, and that the tensors are exactly those of
 * `shapes`, F32, with those shapes. Finiteness and the norm are the caller's
 * (the coordinator's intake).
 */
/** What every result body carries, checked: its safetensors spans, its raw metadata and the accounting. */
export interface ResultEnvelope {
  readonly md: Readonly<Record<string, string>>;
  readonly spans: ReturnType<typeof parseSafetensors>['spans'];
  readonly meta: ResultMeta;
}

/**
 * The part of decoding a result body that every encoding shares: the
 * safetensors structure, the format and protocol, the accounting metadata
 * (task, lease, version, count, loss, correct, bundle). `fail` throws the
 * caller's error type with the code to answer with.
 */
export function readResultEnvelope(bytes: Uint8Array, fail: (code: 'malformed-result' | 'non-finite', detail: string) => never): ResultEnvelope {
  const malformed = (msg: string): never => fail('malformed-result', `result: ${msg}`);
  let parsed: ReturnType<typeof parseSafetensors>;
  try {
    parsed = parseSafetensors(bytes, { source: 'result', maxHeaderBytes: 64 * 1024 });
  } catch (e) {
    if (e instanceof SafetensorsError) fail('malformed-result', e.message);
    throw e;
  }
  const { metadata: md, spans } = parsed;
  const bad = (msg: string): never => malformed(`metadata: ${msg}`);
  if (md.format !== RESULT_FORMAT) bad(`format is ${JSON.stringify(md.format)}, expected "${RESULT_FORMAT}"`);
  if (md.protocol !== String(PROTOCOL_VERSION)) bad(`protocol ${JSON.stringify(md.protocol)}, this coordinator speaks ${PROTOCOL_VERSION}`);
  const int = (key: string): number => {
    const x = md[key];
    if (x === undefined || !/^[0-9]{1,15}$/.test(x)) bad(`"${key}" must be a non-negative integer, got ${JSON.stringify(x)}`);
    return Number(x);
  };
  const str = (key: string): string => {
    const x = md[key];
    if (typeof x !== 'string' || x.length === 0 || x.length > 200) bad(`"${key}" must be a string of 1-200 characters`);
    return x!;
  };
  const loss = Number(md.loss);
  if (md.loss === undefined || md.loss.trim() === '' || !Number.isFinite(loss) || loss < 0) {
    fail('non-finite', `result metadata "loss" must be a finite number >= 0, got ${JSON.stringify(md.loss)}`);
  }
  let bundle: string[] | undefined;
  if (md.bundle !== undefined) {
    bundle = md.bundle.split(',');
    if (bundle.length > MAX_TASKS_PER_REQUEST - 1 || bundle.some((id) => !/^[0-9a-zA-Z-]{1,64}$/.test(id))) {
      bad(`"bundle" must list at most ${MAX_TASKS_PER_REQUEST - 1} lease ids, comma-separated`);
    }
  }
  const meta: ResultMeta = { taskId: str('taskId'), leaseId: str('leaseId'), weightsVersion: int('weightsVersion'), count: int('count'), loss, correct: int('correct'), ...(bundle ? { bundle } : {}) };
  if (meta.correct > meta.count) bad(`"correct" (${meta.correct}) exceeds "count" (${meta.count})`);
  return { md, spans, meta };
}

export function decodeResult(bytes: Uint8Array, shapes: ReadonlyMap<string, readonly number[]>): DecodedResult {
  const { spans, meta } = readResultEnvelope(bytes, (code, detail) => {
    throw new ProtocolError(code, detail);
  });

  const byName = new Map(spans.map((sp) => [sp.name, sp]));
  const grads = new Map<string, Float32Array>();
  for (const [name, shape] of shapes) {
    const sp = byName.get(name);
    if (!sp) throw new ProtocolError('shape-mismatch', `result lacks gradient "${name}" (F32[${shape}])`);
    if (sp.dtype !== 'F32' || sp.shape.join('x') !== shape.join('x')) {
      throw new ProtocolError('shape-mismatch', `gradient "${name}" is ${sp.dtype}[${sp.shape}], expected F32[${shape}]`);
    }
    grads.set(name, tensorData(bytes, sp, true) as Float32Array); // a view of the body: no copy
  }
  for (const name of byName.keys()) {
    if (!shapes.has(name)) throw new ProtocolError('shape-mismatch', `unexpected tensor "${name}" in result (this phase trains ${[...shapes.keys()].join(', ')})`);
  }
  return { meta, grads };
}
