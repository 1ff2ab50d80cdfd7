/**
 * What the donate page asks of its Web Worker, over Comlink. The worker
 * (donor.worker.ts) runs the worker core (client/worker/worker.ts) so the page
 * never blocks on compute; the page only renders snapshots and sends controls.
 */
import type { BackendKind } from '../../core/backend.ts';
import type { BackendChoice } from '../../core/pick-backend.ts';
import type { FilterTiles } from './filters.ts';

export type { BackendChoice };

export interface DonorOptions {
  /** the coordinator's origin, e.g. "http://127.0.0.1:8080" (the page's own origin by default) */
  readonly coordinator: string;
  readonly backend: BackendChoice;
  /** shown on the admin page's workers table */
  readonly name: string;
  /** share of wall time spent computing, (0, 1] */
  readonly throttle: number;
  /**
   * threads for the CPU backend, 1..64 (one thread where the page is not
   * cross-origin isolated; the snapshot's adapter says how many run)
   */
  readonly threads: number;
}

/**
 * idle: never started; starting: choosing a backend and registering;
 * running: computing or fetching; waiting: no task right now (iteration's
 * tasks all out, or job paused/done); paused: the volunteer paused;
 * offline: the coordinator cannot be reached, retrying with backoff;
 * stopped: stopped by the volunteer; error: cannot continue (see message).
 */
export type DonorState = 'idle' | 'starting' | 'running' | 'waiting' | 'paused' | 'offline' | 'stopped' | 'error';

export interface DonorSnapshot {
  readonly state: DonorState;
  /** one line for people: what the worker is doing, or what went wrong */
  readonly message: string;
  readonly backend: BackendKind | null;
  readonly adapter: string | null;
  /** why WebGPU was not used, when it was not */
  readonly fallbackReason: string | null;
  readonly job: { readonly id: string; readonly name: string; readonly iteration: number; readonly totalIterations: number | null; readonly phase: string } | null;
  readonly workerId: string | null;
  readonly tasksDone: number;
  readonly examplesDone: number;
  readonly examplesPerSecond: number;
  readonly bytesUp: number;
  readonly bytesDown: number;
  /** ms spent computing tasks */
  readonly computeMs: number;
  /** ms since start, pauses excluded */
  readonly donatedMs: number;
  /** when offline: ms until the next try */
  readonly retryInMs: number | null;
  /** the version of the weights the worker holds (the filters come from it) */
  readonly weightsVersion: number | null;
  /** what the page needs to hand a lease back when the tab closes */
  readonly leave: { readonly token: string; readonly leaseId: string | null } | null;
  /** partition blobs served from the IndexedDB cache */
  readonly cacheHits: number;
}

export interface DonorApi {
  /** Picks a backend, registers, and starts leasing tasks. Resolves once running (or failed). */
  start(opts: DonorOptions): Promise<DonorSnapshot>;
  pause(): Promise<void>;
  resume(): Promise<void>;
  /** Returns the lease, leaves the coordinator, and releases the backend. */
  stop(): Promise<void>;
  setThrottle(share: number): Promise<void>;
  snapshot(): Promise<DonorSnapshot>;
  /** Calls `listener` (a Comlink proxy) with a snapshot whenever something changes, at most ~4 times a second. */
  subscribe(listener: (s: DonorSnapshot) => void): Promise<void>;
  /** The first `n` filters of rbm0 from the weights the worker holds, or null before any weights arrived. */
  filters(n: number): Promise<FilterTiles | null>;
}
