/**
 * The wire protocol between the coordinator and every worker (Deno, browser):
 * paths, JSON message types, and the binary encoders for weights and results.
 * Nothing else declares these; coordinator/API.md documents them for people.
 * Runtime-neutral: only web-standard APIs (TextEncoder, crypto.subtle).
 *
 * A task result travels as safetensors: one F32 tensor per gradient the
 * phase trains (named as in params.ts, shapes as in tensorShapes), and the
 * accounting in `__metadata__` (all strings, as safetensors requires).
 */
import type { BackendKind } from './backend.ts';
import type { JobConfig } from './model/config.ts';
import type { Params } from './model/params.ts';
import type { Phase } from './model/plan.ts';
import { encodeSafetensors, parseSafetensors, SafetensorsError, tensorData } from './safetensors.ts';

export const PROTOCOL_VERSION = 1;
export const API_PREFIX = '/api/v1';

/** The worker's credential, from RegisterResponse.token, on every worker request. */
export const WORKER_HEADER = 'x-tessera-worker';
/** MIME type of safetensors bodies (results, weights, checkpoints). */
export const SAFETENSORS_TYPE = 'application/vnd.safetensors';
/** MIME type of partition blobs (datasets/partition.ts format). */
export const PARTITION_TYPE = 'application/vnd.tessera.partition';

/** Every path the coordinator serves. Functions build paths with parameters. */
export const PATHS = {
  /** GET, public: what the grid is doing (donate page). */
  status: `${API_PREFIX}/status`,
  /** POST RegisterRequest -> RegisterResponse */
  register: `${API_PREFIX}/workers`,
  /** POST HeartbeatRequest -> HeartbeatResponse (worker header) */
  heartbeat: `${API_PREFIX}/workers/heartbeat`,
  /** POST (worker header): the worker leaves; its leases return to the pool. */
  leave: `${API_PREFIX}/workers/leave`,
  /** POST LeaseRequest -> LeaseResponse (worker header); long-polls up to waitMs. */
  lease: `${API_PREFIX}/leases`,
  /** PUT safetensors result -> ResultAck (worker header) */
  result: (leaseId: string): string => `${API_PREFIX}/leases/${leaseId}/result`,
  /** POST (worker header): give a lease back unfinished. */
  returnLease: (leaseId: string): string => `${API_PREFIX}/leases/${leaseId}/return`,
  /** GET: an immutable content-addressed blob (weights or partition). */
  blob: (hash: string): string => `${API_PREFIX}/blobs/${hash}`,
  admin: {
    /** GET list, POST create (JobConfig JSON, partial allowed) */
    jobs: `${API_PREFIX}/admin/jobs`,
    job: (id: string): string => `${API_PREFIX}/admin/jobs/${id}`,
    /** POST start | pause | resume | cancel */
    action: (id: string, action: JobAction): string => `${API_PREFIX}/admin/jobs/${id}/${action}`,
    metrics: (id: string): string => `${API_PREFIX}/admin/jobs/${id}/metrics`,
    /** GET safetensors of the current weights */
    weights: (id: string): string => `${API_PREFIX}/admin/jobs/${id}/weights`,
    /** GET text/event-stream of JobEvent */
    events: `${API_PREFIX}/admin/events`,
    workers: `${API_PREFIX}/admin/workers`,
  },
} as const;

export type JobAction = 'start' | 'pause' | 'resume' | 'cancel';
export type JobState = 'created' | 'running' | 'paused' | 'cancelled' | 'done' | 'failed';
export type WorkerRuntime = 'deno' | 'browser' | 'node';

/** Error body of every 4xx/5xx answer. `error` is one of ErrorCode, `detail` says what to do. */
export interface ApiError {
  readonly error: ErrorCode;
  readonly detail: string;
}

export type ErrorCode =
  | 'bad-request'
  | 'unauthorized'
  | 'worker-left'
  | 'forbidden'
  | 'not-found'
  | 'conflict'
  | 'unknown-lease'
  | 'foreign-lease'
  | 'lease-expired'
  | 'stale-weights'
  | 'duplicate-result'
  | 'malformed-result'
  | 'shape-mismatch'
  | 'count-mismatch'
  | 'non-finite'
  | 'norm-bound'
  | 'wrong-mode'
  | 'wrong-encoding'
  | 'bad-scale'
  | 'unknown-version'
  | 'body-too-large'
  | 'upload-timeout'
  | 'rate-limited'
  | 'gone'
  | 'internal';

export interface RegisterRequest {
  /** for people; 1-64 characters */
  readonly name: string;
  readonly runtime: WorkerRuntime;
  readonly backend: BackendKind;
  /** ComputeBackend.adapter */
  readonly adapter: string;
  /** hashes of blobs the worker has cached (partitions) */
  readonly cached?: readonly string[];
}

export interface RegisterResponse {
  /** public id, shown on the admin page */
  readonly workerId: string;
  /** secret credential: send it in WORKER_HEADER */
  readonly token: string;
  /** send a heartbeat at least this often */
  readonly heartbeatMs: number;
  /** largest result body accepted, bytes */
  readonly maxResultBytes: number;
}

/** Counters a worker reports; totals since it started. */
export interface WorkerStats {
  readonly tasksDone: number;
  readonly examplesDone: number;
  /** over the recent window */
  readonly examplesPerSecond: number;
  readonly bytesUp: number;
  readonly bytesDown: number;
}

export interface HeartbeatRequest {
  readonly stats: WorkerStats;
  readonly cached?: readonly string[];
}

export interface HeartbeatResponse {
  readonly job: { readonly id: string; readonly state: JobState; readonly iteration: number } | null;
}

export interface LeaseRequest {
  /** hashes of cached partition blobs: tasks on them are preferred */
  readonly cached?: readonly string[];
  /** long-poll: wait up to this long for a task (capped by the coordinator) */
  readonly waitMs?: number;
  /**
   * up to this many tasks of one iteration (1-64, default 1): the worker
   * computes them all and uploads one result summing them, so a worker
   * holding several partitions sends one gradient per iteration, not one per task
   */
  readonly maxTasks?: number;
}

/** Most tasks one lease request may take (LeaseRequest.maxTasks). */
export const MAX_TASKS_PER_REQUEST = 64;

export interface BlobRef {
  readonly hash: string;
  readonly bytes: number;
}

/** A weights delta blob: from the whole weights blob `fromHash` of version `from` to version `from + 1`. */
export interface DeltaRef extends BlobRef {
  readonly from: number;
  readonly fromHash: string;
}

export interface TaskLease {
  readonly leaseId: string;
  /** `${jobId}:${iteration}:${partition}` */
  readonly taskId: string;
  readonly jobId: string;
  readonly iteration: number;
  readonly phase: Phase;
  readonly config: JobConfig;
  /** weights before iteration `version`'s update; version === iteration */
  readonly weights: BlobRef & { readonly version: number };
  /** the partition holds global examples [lo, hi) */
  readonly partition: BlobRef & { readonly index: number; readonly lo: number; readonly hi: number };
  /** examples = sampleRange(config.seed, iteration, lo, hi, fraction); `count` of them (local SGD: over all the round's local steps; fraction 0) */
  readonly sample: { readonly fraction: number; readonly count: number };
  /** local SGD (config.training.mode): the round (= iteration) and the training set's size, from which the worker rebuilds the plan (LocalSgdPlan) */
  readonly local?: { readonly round: number; readonly trainCount: number };
  /**
   * with a training config: the delta blobs of the last few versions, oldest
   * first, the last one ending at this version; each turns the whole weights
   * blob `fromHash` (version `from`) into the next version's (weights-delta.ts).
   * A worker holding one of their `from` versions applies the rest in turn.
   */
  readonly deltas?: readonly DeltaRef[];
  /** ms the worker has from issue to upload */
  readonly timeoutMs: number;
}

export type LeaseResponse =
  | {
      readonly lease: TaskLease;
      /**
       * further leases of the same iteration (maxTasks > 1): answered together
       * with `lease` by one result uploaded for `lease`, naming these in its
       * `bundle` metadata
       */
      readonly more?: readonly TaskLease[];
    }
  | { readonly lease: null; readonly reason: 'no-job' | 'paused' | 'waiting' | 'done'; readonly retryAfterMs: number };

export interface ResultAck {
  readonly accepted: true;
  readonly taskId: string;
  readonly iteration: number;
  /** tasks of the iteration covered so far, and of how many */
  readonly covered: number;
  readonly of: number;
}

export interface PublicStatus {
  readonly protocol: number;
  readonly job: { readonly id: string; readonly name: string; readonly state: JobState; readonly iteration: number; readonly totalIterations: number; readonly phase: string } | null;
  readonly workers: number;
}

/** Server-sent events on PATHS.admin.events (`event:` is the type, `data:` the JSON). */
export type JobEvent =
  | { readonly type: 'iteration'; readonly jobId: string; readonly metrics: IterationMetricsRow }
  | { readonly type: 'phase'; readonly jobId: string; readonly phase: string; readonly iteration: number }
  | { readonly type: 'evaluation'; readonly jobId: string; readonly iteration: number; readonly phase: string; readonly testError: number; readonly testLoss: number }
  | { readonly type: 'job'; readonly jobId: string; readonly state: JobState }
  | { readonly type: 'checkpoint'; readonly jobId: string; readonly iteration: number }
  | { readonly type: 'worker'; readonly workerId: string; readonly change: 'joined' | 'left' | 'lost' };

export interface IterationMetricsRow {
  readonly iteration: number;
  readonly phase: string;
  /** loss sum / count */
  readonly loss: number;
  /** correct / count (fine-tuning) */
  readonly accuracy: number;
  readonly count: number;
  readonly tasks: number;
  /** wall seconds from the weights' publication to the update */
  readonly seconds: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
}

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
export const WEIGHTS_FORMAT = 'tessera-weights';

/** A decoding failure, with the HTTP status and code the coordinator answers with. */
export class ProtocolError extends Error {
  constructor(readonly status: 400 | 409 | 413 | 422, readonly code: ErrorCode, detail: string) {
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
export function decodeResult(bytes: Uint8Array, shapes: ReadonlyMap<string, readonly number[]>): DecodedResult {
  const malformed = (msg: string): never => {
    throw new ProtocolError(400, 'malformed-result', `result: ${msg}`);
  };
  let parsed: ReturnType<typeof parseSafetensors>;
  try {
    parsed = parseSafetensors(bytes, { source: 'result', maxHeaderBytes: 64 * 1024 });
  } catch (e) {
    if (e instanceof SafetensorsError) throw new ProtocolError(400, 'malformed-result', e.message);
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
    throw new ProtocolError(422, 'non-finite', `result metadata "loss" must be a finite number >= 0, got ${JSON.stringify(md.loss)}`);
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

  const byName = new Map(spans.map((sp) => [sp.name, sp]));
  const grads = new Map<string, Float32Array>();
  for (const [name, shape] of shapes) {
    const sp = byName.get(name);
    if (!sp) throw new ProtocolError(422, 'shape-mismatch', `result lacks gradient "${name}" (F32[${shape}])`);
    if (sp.dtype !== 'F32' || sp.shape.join('x') !== shape.join('x')) {
      throw new ProtocolError(422, 'shape-mismatch', `gradient "${name}" is ${sp.dtype}[${sp.shape}], expected F32[${shape}]`);
    }
    grads.set(name, tensorData(bytes, sp, true) as Float32Array); // a view of the body: no copy
  }
  for (const name of byName.keys()) {
    if (!shapes.has(name)) throw new ProtocolError(422, 'shape-mismatch', `unexpected tensor "${name}" in result (this phase trains ${[...shapes.keys()].join(', ')})`);
  }
  return { meta, grads };
}

/** Encodes the weights of one version (every tensor of the model) for broadcast. */
export function encodeWeights(cfg: JobConfig, params: Params, shapes: ReadonlyMap<string, readonly number[]>, version: number, jobId: string, into?: Uint8Array): Uint8Array {
  const entries: [string, { shape: readonly number[]; data: Float32Array }][] = [];
  for (const [name, shape] of shapes) {
    const t = params.get(name);
    if (!t) throw new Error(`encodeWeights: params lack "${name}"`);
    entries.push([name, { shape, data: t }]);
  }
  return encodeSafetensors(entries, { format: WEIGHTS_FORMAT, version: String(version), job: jobId, layers: cfg.layers.join('-') }, into);
}

/** Decodes a weights blob into params, checking every tensor's shape. */
export function decodeWeights(bytes: Uint8Array, shapes: ReadonlyMap<string, readonly number[]>): { params: Params; version: number } {
  const { metadata: md, spans } = parseSafetensors(bytes, { source: 'weights' });
  if (md.format !== WEIGHTS_FORMAT) throw new SafetensorsError(`weights: format ${JSON.stringify(md.format)}, expected "${WEIGHTS_FORMAT}"`);
  const byName = new Map(spans.map((sp) => [sp.name, sp]));
  const params: Params = new Map();
  for (const [name, shape] of shapes) {
    const sp = byName.get(name);
    if (!sp || sp.dtype !== 'F32' || sp.shape.join('x') !== shape.join('x')) {
      throw new SafetensorsError(`weights: tensor "${name}" missing or not F32[${shape}]`);
    }
    params.set(name, tensorData(bytes, sp, true) as Float32Array); // views of the blob: no copy
  }
  return { params, version: Number(md.version) };
}

/** Lowercase hex SHA-256 of a blob: its content address. */
export async function blobHash(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>);
  const b = new Uint8Array(digest);
  let s = '';
  for (let i = 0; i < b.length; i++) s += b[i]!.toString(16).padStart(2, '0');
  return s;
}

export const HASH_PATTERN = /^[0-9a-f]{64}$/;
