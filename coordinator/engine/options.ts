/** The coordinator's options, and their defaults. */
import type { ComputeBackend } from '../../core/backend.ts';
import type { JobConfig } from '../../core/model/config.ts';
import { MAX_TASKS_PER_REQUEST } from '../../core/protocol/index.ts';
import type { AggregatorKind } from '../aggregate/index.ts';
import type { Tolerance } from '../trust/compare.ts';
import type { TrustPolicy } from '../trust/reputation.ts';
import { P2P_DEFAULTS, type P2POptions } from './p2p-rounds.ts';
import type { TrainTestData } from './run.ts';

export interface CoordinatorOptions {
  /** state.sqlite and jobs/<id>/checkpoint-*.safetensors live here */
  readonly dataDir: string;
  /** The data of a job (its trainLimit/testLimit applied). */
  readonly loadData: (cfg: JobConfig) => Promise<TrainTestData>;
  /** Backend for test-error evaluation; none: no evaluation. */
  readonly evalBackend?: () => Promise<ComputeBackend>;
  readonly aggregator?: AggregatorKind;
  readonly fanIn?: number;
  /** ms from issue until a lease expires (default 60 000) */
  readonly leaseTimeoutMs?: number;
  /** heartbeat period asked of workers (default 5 000) */
  readonly heartbeatMs?: number;
  /** a worker silent this long is lost and its leases expire (default max(3 heartbeats, 30 s)) */
  readonly workerTimeoutMs?: number;
  /** longest long-poll of a lease request (default 30 000) */
  readonly maxLeaseWaitMs?: number;
  /** a result's gradient L2 norm may not exceed this times its example count (default 1e4) */
  readonly normBoundPerExample?: number;
  /** result bodies read at once (default 4): further uploads wait unread (TCP backpressure) */
  readonly maxConcurrentUploads?: number;
  /** a result body must arrive within this many ms once its reading starts (default 60 000) */
  readonly uploadTimeoutMs?: number;
  /** 'auto' (default): WebAssembly SIMD where available; 'js': the plain loop */
  readonly summer?: 'auto' | 'js' | 'simd';
  /** keep this many checkpoint files per job (default 2) */
  readonly keepCheckpoints?: number;
  /** leases one worker may hold at once (default MAX_TASKS_PER_REQUEST, 64) */
  readonly maxLeasesPerWorker?: number;
  /** a worker that left or was lost this long ago is deleted, row and all (default 24 h) */
  readonly workerRetentionMs?: number;
  /**
   * Verification by recomputation (coordinator/trust/): the trust policy,
   * the comparison's tolerance, the backend that recomputes (default: a
   * second evalBackend), the draws of the sampling. Without a backend no
   * result is checked.
   */
  readonly trust?: { readonly policy?: TrustPolicy; readonly tolerance?: Tolerance; readonly backend?: () => Promise<ComputeBackend>; readonly random?: () => number };
  readonly log?: (msg: string) => void;
  /** peer-to-peer trees among tabs (p2p-rounds.ts): fan-in (default 2), gather and collect ms, sketch buckets, ICE servers handed to tabs */
  readonly p2p?: Partial<P2POptions>;
}

export type ResolvedOptions = Required<Omit<CoordinatorOptions, 'evalBackend' | 'log' | 'trust' | 'p2p'>> & Pick<CoordinatorOptions, 'evalBackend' | 'log' | 'trust'> & { readonly p2p: P2POptions };

export function withDefaults(o: CoordinatorOptions): ResolvedOptions {
  const heartbeatMs = o.heartbeatMs ?? 5_000;
  return {
    dataDir: o.dataDir,
    loadData: o.loadData,
    evalBackend: o.evalBackend,
    aggregator: o.aggregator ?? 'tree',
    fanIn: o.fanIn ?? 4,
    leaseTimeoutMs: o.leaseTimeoutMs ?? 60_000,
    heartbeatMs,
    workerTimeoutMs: o.workerTimeoutMs ?? Math.max(3 * heartbeatMs, 30_000),
    maxLeaseWaitMs: o.maxLeaseWaitMs ?? 30_000,
    normBoundPerExample: o.normBoundPerExample ?? 1e4,
    keepCheckpoints: o.keepCheckpoints ?? 2,
    maxConcurrentUploads: o.maxConcurrentUploads ?? 4,
    uploadTimeoutMs: o.uploadTimeoutMs ?? 60_000,
    summer: o.summer ?? 'auto',
    maxLeasesPerWorker: o.maxLeasesPerWorker ?? MAX_TASKS_PER_REQUEST,
    workerRetentionMs: o.workerRetentionMs ?? 24 * 3_600_000,
    trust: o.trust,
    log: o.log,
    p2p: { ...P2P_DEFAULTS, collectMs: Math.floor((o.leaseTimeoutMs ?? 60_000) / 2), ...o.p2p },
  };
}
