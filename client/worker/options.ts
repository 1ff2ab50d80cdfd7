/** What a GridWorker is given (WorkerOptions) and what it reports (WorkerEvent). */
import type { ComputeBackend } from '../../core/backend.ts';
import type { ApiError, ResultAck, TaskLease, WorkerRuntime, WorkerStats } from '../../core/protocol/index.ts';
import type { BlobCache } from './cache.ts';

export type WorkerEvent =
  | { readonly type: 'registered'; readonly workerId: string }
  | { readonly type: 'task'; readonly lease: TaskLease }
  | {
      readonly type: 'done';
      /** the (first) task; `tasks` counts a bundle's */
      readonly taskId: string;
      readonly tasks: number;
      readonly examples: number;
      readonly seconds: number;
      /** ms spent: getting the blobs, computing, encoding, uploading */
      readonly timing: { readonly fetch: number; readonly compute: number; readonly encode: number; readonly upload: number };
      readonly ack: ResultAck;
      readonly stats: WorkerStats;
    }
  | { readonly type: 'rejected'; readonly taskId: string; readonly status: number; readonly error: ApiError }
  | { readonly type: 'idle'; readonly reason: string }
  | { readonly type: 'offline'; readonly message: string; readonly retryInMs: number }
  | { readonly type: 'paused' }
  | { readonly type: 'resumed' }
  | { readonly type: 'stopped' };

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export interface WorkerOptions {
  /** base URL, e.g. "http://localhost:8080" */
  readonly coordinator: string;
  readonly backend: ComputeBackend;
  readonly name: string;
  readonly runtime: WorkerRuntime;
  readonly cache?: BlobCache;
  readonly fetch?: FetchLike;
  /** fraction of wall time to spend computing, (0, 1] (default 1: no pauses between tasks) */
  readonly throttle?: number;
  /** long-poll of lease requests (default 20 000 ms) */
  readonly leaseWaitMs?: number;
  /** reconnect backoff: first wait and cap (default 250 ms, 10 s) */
  readonly backoffMs?: { readonly initial: number; readonly max: number };
  /** stop after this many accepted tasks (tests, benchmarks) */
  readonly maxTasks?: number;
  /**
   * tasks of one iteration to take per lease request (default 1): computed in
   * turn and uploaded as one summed result, so a worker holding several
   * partitions sends one gradient per iteration; the coordinator grants at
   * most this worker's share of what is pending
   */
  readonly tasksPerLease?: number;
  /** stop when the coordinator says the job is done (default false: wait for the next job) */
  readonly exitWhenDone?: boolean;
  readonly onEvent?: (e: WorkerEvent) => void;
  /** test hook: called before uploading; may delay (simulate a slow worker) */
  readonly beforeUpload?: (lease: TaskLease) => Promise<void>;
}
