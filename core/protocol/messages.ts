/**
 * The JSON messages between the coordinator and its clients (workers, the
 * admin page): requests, responses, events and the views the admin API
 * answers with. Only types and a few limits; the paths are in paths.ts, the
 * binary formats in results.ts, weights.ts and partition.ts. Nothing else
 * declares these; coordinator/API.md documents them for people.
 */
import type { BackendKind } from '../backend.ts';
import type { JobConfig } from '../model/config.ts';
import type { Phase } from '../model/plan.ts';

export type JobState = 'created' | 'running' | 'paused' | 'cancelled' | 'done' | 'failed';
export type WorkerRuntime = 'deno' | 'browser' | 'node';

/** Error body of every 4xx/5xx answer. `error` is one of ErrorCode, `detail` says what to do. */
export interface ApiError {
  readonly error: ErrorCode;
  readonly detail: string;
  /** a body or job config refused by its schema (400): every problem by field */
  readonly issues?: readonly FieldIssue[];
}

/** One problem with an input, named by its field's dotted path ("" for the whole input). */
export interface FieldIssue {
  readonly field: string;
  readonly message: string;
}

export type ErrorCode =
  | 'bad-request'
  | 'unauthorized'
  | 'worker-left'
  | 'banned'
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
  | 'out-of-range'
  | 'body-too-large'
  | 'upload-timeout'
  | 'rate-limited'
  | 'gone'
  // peer-to-peer partial sums (coordinator/engine/p2p-plan.ts)
  | 'coverage-claim'
  | 'sketch-mismatch'
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

/** What a job looks like to the admin API (PATHS.admin.jobs, PATHS.admin.job). */
export interface JobSummary {
  readonly id: string;
  readonly name: string;
  readonly state: JobState;
  readonly config: JobConfig;
  readonly iteration: number;
  readonly totalIterations: number;
  readonly phase: string;
  readonly phases: { phase: string; start: number; iterations: number }[];
  readonly checkpointIteration: number;
  readonly createdAt: number;
  readonly startedAt: number | null;
  readonly finishedAt: number | null;
  readonly tasks: { done: number; leased: number; pending: number };
  readonly lateResults: number;
  readonly rejectedResults: number;
  readonly lastEvaluation: { iteration: number; phase: string; testError: number; testLoss: number } | null;
  readonly error: string | null;
  /** checking by recomputation (coordinator/trust/): the job's policy and what it cost */
  readonly trust: JobChecking;
}

/** A job's checking: its policy, the results checked and failed, examples recomputed against examples counted. */
export interface JobChecking {
  readonly verification: JobConfig['verification'];
  readonly aggregation: JobConfig['aggregation'];
  readonly checks: number;
  readonly failures: number;
  readonly checkedExamples: number;
  readonly acceptedExamples: number;
  readonly checkSeconds: number;
  /** checkedExamples / acceptedExamples: the extra compute of checking */
  readonly overhead: number;
}

/** A worker's record with the checks (coordinator/trust/reputation.ts). */
export interface WorkerTrust {
  /** the registration source: the client address's IPv4 /24 or IPv6 /48 */
  readonly source: string;
  readonly checked: number;
  readonly agreed: number;
  readonly failed: number;
  /** agreements since its last failure, in all and per kind of task (phase) */
  readonly consecutive: number;
  readonly consecutiveBy: Readonly<Record<string, number>>;
  /** strikes its source had when it registered */
  readonly inherited: number;
  /** it, or its source, failed a check */
  readonly marked: boolean;
  readonly banned: boolean;
  readonly bannedAt: number | null;
  readonly banReason: string | null;
  /** the chance its next result (of the current phase) is checked; 1 on probation */
  readonly checkProbability: number;
}

/** A worker as the admin API lists it (PATHS.admin.workers). */
export interface WorkerView {
  readonly id: string;
  readonly name: string;
  readonly runtime: string;
  readonly backend: string;
  readonly adapter: string;
  readonly state: 'active' | 'left' | 'lost';
  readonly tasksDone: number;
  readonly examplesDone: number;
  readonly examplesPerSecond: number;
  readonly bytesUp: number;
  readonly bytesDown: number;
  readonly rejected: number;
  readonly late: number;
  readonly joinedAt: number;
  readonly lastSeen: number;
  /** null on a coordinator that checks nothing */
  readonly trust: WorkerTrust | null;
}

/** One test-set evaluation of a job (after a phase, and at the end). */
export interface EvaluationRow {
  readonly iteration: number;
  readonly phase: string;
  readonly testError: number;
  readonly testLoss: number;
  /** K x K counts, row = true label, column = prediction */
  readonly confusion?: number[];
}

/** The answer of PATHS.admin.metrics. */
export interface JobMetrics {
  readonly iterations: IterationMetricsRow[];
  readonly evaluations: EvaluationRow[];
}
