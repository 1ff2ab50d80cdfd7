/**
 * The coordinator's engine, free of HTTP: jobs and their lifecycle, the
 * weights and partition blobs, workers, task leasing (deadline, re-issue,
 * cache preference, long-poll), result validation and intake, aggregation,
 * the update, metrics, evaluation, checkpoints and recovery. app.ts maps
 * HTTP onto it; tests may call it directly.
 *
 * One iteration (synchronous, as in Spark): weights of version t are
 * published as a blob; one task per partition is created; each task is
 * leased to a worker with a deadline; an expired lease sends its task back to
 * the pool; the first valid result for a task is aggregated; when coverage is
 * complete the momentum-SGD update runs and t becomes t + 1. The arithmetic is
 * the in-process trainer's (coordinator/trainer.ts), so the weights agree up
 * to the order of float summation.
 *
 * Everything between reading a request body and answering runs without an
 * await, so no two results interleave inside validation or aggregation.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { ComputeBackend } from '../client/core/backend.ts';
import { ConfigError, parseJobConfig, type JobConfig } from '../client/core/model/config.ts';
import { MomentumSgd } from '../client/core/model/optimizer.ts';
import { cloneParams, initParams, phaseTensors, tensorShapes, type Params } from '../client/core/model/params.ts';
import { phaseName, TrainingPlan, type IterationPlan } from '../client/core/model/plan.ts';
import {
  decodeResult,
  encodeWeights,
  PARTITION_TYPE,
  PATHS,
  ProtocolError,
  SAFETENSORS_TYPE,
  type HeartbeatRequest,
  type HeartbeatResponse,
  type IterationMetricsRow,
  type JobEvent,
  type JobState,
  type LeaseResponse,
  type PublicStatus,
  type RegisterRequest,
  type RegisterResponse,
  type ResultAck,
  type DeltaRef,
  type TaskLease,
  type WorkerStats,
} from '../client/core/protocol.ts';
import { sampleRange } from '../client/core/rng.ts';
import type { Dataset } from '../datasets/dataset.ts';
import { encodePartition, partitionDataset } from '../datasets/partition.ts';
import { createSummer, FlatAggregator, SimdSummer, TreeAggregator, type Aggregator, type AggregatorKind, type ReceiveSlot, type Summer } from './aggregate/index.ts';
import { sha256Hex } from './auth.ts';
import { loadCheckpoint, saveCheckpoint } from './checkpoint.ts';
import { HttpError } from './errors.ts';
import { EventBus } from './events.ts';
import { Store, type JobRow, type WorkerRow } from './store.ts';
import { evaluate } from './trainer.ts';
import { JobMode, type Step } from './modes.ts';

export interface TrainTestData {
  readonly train: Dataset;
  readonly test: Dataset;
}

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
  readonly log?: (msg: string) => void;
}

/** What a job looks like to the admin API. */
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
}

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
}

interface Worker {
  row: WorkerRow;
  cached: Set<string>;
}

interface Blob {
  readonly bytes: Uint8Array;
  readonly type: string;
  /** responses still sending `bytes` (see holdBlob) */
  sending: number;
  /** no longer served (an old version's weights) */
  retired: boolean;
  /** a weights buffer: reused for a later version once retired and sent */
  readonly reuse: boolean;
}

interface TaskSlot {
  readonly id: string;
  readonly partition: number;
  state: 'pending' | 'leased' | 'done';
  leaseId: string | null;
  workerId: string | null;
  attempts: number;
  /** examples the sample holds */
  readonly expected: number;
}

interface LeaseInfo {
  readonly id: string;
  readonly jobId: string;
  readonly taskId: string;
  readonly partition: number;
  readonly iteration: number;
  readonly workerId: string;
  readonly deadline: number;
  state: 'active' | 'done' | 'expired' | 'returned';
}

interface PartitionBlob {
  readonly index: number;
  readonly lo: number;
  readonly hi: number;
  readonly hash: string;
  readonly bytes: number;
}

/** The running (or paused) job in memory. */
interface ActiveRun {
  readonly id: string;
  readonly cfg: JobConfig;
  readonly plan: TrainingPlan;
  /** the job's training mode: its steps (iterations or rounds), decoding, update, broadcast */
  readonly mode: JobMode;
  /** the master weights (the optimizer's); workers compute on mode.published where there is a training config */
  readonly params: Params;
  readonly optimizer: MomentumSgd;
  readonly shapes: Map<string, number[]>;
  readonly partitions: PartitionBlob[];
  readonly test: Dataset;
  iteration: number;
  it: Step | null;
  /** phase tensor shapes of the current iteration */
  gradShapes: Map<string, number[]>;
  weights: { hash: string; bytes: number; version: number } | null;
  /** the delta blobs of the last DELTA_HISTORY versions, oldest first, the last ending at `weights` (a job with a training config) */
  deltas: DeltaRef[];
  /** published weights restored from a checkpoint, for the first publication */
  resumedPublished: Params | undefined;
  readonly trainCount: number;
  slots: TaskSlot[];
  aggregator: Aggregator;
  summer: Summer;
  startedAt: number;
  bytesIn: number;
  bytesOut: number;
}

interface Waiter {
  readonly worker: Worker;
  readonly maxTasks: number;
  readonly resolve: (r: LeaseResponse) => void;
  timer: ReturnType<typeof setTimeout>;
}

const RESULT_SLACK_BYTES = 64 * 1024;

/** Versions of weights deltas served (a job with a training config): a worker that sat out a few versions still follows by deltas. */
const DELTA_HISTORY = 8;

export class Coordinator {
  readonly store: Store;
  readonly events = new EventBus();
  private readonly opts: Required<Omit<CoordinatorOptions, 'evalBackend' | 'log'>> & Pick<CoordinatorOptions, 'evalBackend' | 'log'>;
  private readonly workersByToken = new Map<string, Worker>();
  private readonly workersById = new Map<string, Worker>();
  private readonly blobs = new Map<string, Blob>();
  /** weights hashes no longer served */
  private readonly goneBlobs = new Set<string>();
  private readonly leases = new Map<string, LeaseInfo>();
  private waiters: Waiter[] = [];
  private run: ActiveRun | null = null;
  private sweepTimer: ReturnType<typeof setInterval> | null = null;
  private evalChain: Promise<void> = Promise.resolve();
  private evalBackendP: Promise<ComputeBackend> | null = null;
  private closed = false;

  private constructor(opts: CoordinatorOptions) {
    const heartbeatMs = opts.heartbeatMs ?? 5_000;
    this.opts = {
      dataDir: opts.dataDir,
      loadData: opts.loadData,
      evalBackend: opts.evalBackend,
      aggregator: opts.aggregator ?? 'tree',
      fanIn: opts.fanIn ?? 4,
      leaseTimeoutMs: opts.leaseTimeoutMs ?? 60_000,
      heartbeatMs,
      workerTimeoutMs: opts.workerTimeoutMs ?? Math.max(3 * heartbeatMs, 30_000),
      maxLeaseWaitMs: opts.maxLeaseWaitMs ?? 30_000,
      normBoundPerExample: opts.normBoundPerExample ?? 1e4,
      keepCheckpoints: opts.keepCheckpoints ?? 2,
      maxConcurrentUploads: opts.maxConcurrentUploads ?? 4,
      uploadTimeoutMs: opts.uploadTimeoutMs ?? 60_000,
      summer: opts.summer ?? 'auto',
      log: opts.log,
    };
    mkdirSync(opts.dataDir, { recursive: true });
    this.store = new Store(join(opts.dataDir, 'state.sqlite'));
  }

  /** Opens the data folder and resumes a job that was running or paused when the process died. */
  static async open(opts: CoordinatorOptions): Promise<Coordinator> {
    const c = new Coordinator(opts);
    for (const w of c.store.workers()) {
      const worker: Worker = { row: w, cached: new Set() };
      c.workersByToken.set(w.token_hash, worker);
      c.workersById.set(w.id, worker);
    }
    const live = c.store.jobs().find((j) => j.state === 'running' || j.state === 'paused');
    if (live) await c.activate(live, true);
    const tick = Math.max(20, Math.min(250, Math.floor(c.opts.leaseTimeoutMs / 4)));
    c.sweepTimer = setInterval(() => c.sweep(), tick);
    c.sweepTimer.unref?.();
    return c;
  }

  get heartbeatMs(): number {
    return this.opts.heartbeatMs;
  }

  private log(msg: string): void {
    this.opts.log?.(msg);
  }

  private emit(e: JobEvent): void {
    this.events.emit(e);
  }

  /**
   * Largest result body accepted: the model's full gradient plus header
   * slack, for the active job (or the last one, so late results of a job that
   * just ended still get their 410 rather than a 413).
   */
  get maxResultBytes(): number {
    return this.resultLimit;
  }

  private resultLimit = RESULT_SLACK_BYTES;

  private setResultLimit(cfg: JobConfig): void {
    let n = 0;
    for (const s of tensorShapes(cfg).values()) n += s.reduce((a, b) => a * b, 1);
    this.resultLimit = n * 4 + RESULT_SLACK_BYTES;
  }

  // ---------------------------------------------------------------- jobs

  async createJob(input: unknown): Promise<JobSummary> {
    let cfg: JobConfig;
    try {
      cfg = parseJobConfig(input);
    } catch (e) {
      if (e instanceof ConfigError) throw new HttpError(400, 'bad-request', e.message);
      throw e;
    }
    const data = await this.opts.loadData(cfg);
    let plan: TrainingPlan;
    try {
      plan = new TrainingPlan(cfg, data.train.count);
    } catch (e) {
      throw new HttpError(400, 'bad-request', (e as Error).message);
    }
    const id = `job-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
    this.store.insertJob({
      id,
      name: cfg.name,
      config: JSON.stringify(cfg),
      state: 'created',
      iteration: 0,
      total_iterations: new JobMode(cfg, plan).total,
      train_count: data.train.count,
      checkpoint_iteration: 0,
      checkpoint_path: null,
      created_at: Date.now(),
      started_at: null,
      finished_at: null,
      late_results: 0,
      rejected_results: 0,
      error: null,
    });
    return this.summary(id);
  }

  private jobRow(id: string): JobRow {
    const j = this.store.job(id);
    if (!j) throw new HttpError(404, 'not-found', `no job "${id}"`);
    return j;
  }

  async action(id: string, action: 'start' | 'pause' | 'resume' | 'cancel'): Promise<JobSummary> {
    const j = this.jobRow(id);
    const conflict = (why: string): never => {
      throw new HttpError(409, 'conflict', `cannot ${action} job ${id} (${j.state}): ${why}`);
    };
    switch (action) {
      case 'start':
        if (j.state !== 'created') conflict('only a created job can start');
        if (this.run) conflict(`job ${this.run.id} is active; pause does not free the grid, cancel it first`);
        this.store.updateJob(id, { state: 'running', started_at: Date.now() });
        await this.activate(this.jobRow(id), false);
        break;
      case 'pause':
        if (j.state !== 'running') conflict('only a running job can pause');
        this.setState(id, 'paused');
        break;
      case 'resume':
        if (j.state !== 'paused') conflict('only a paused job can resume');
        this.setState(id, 'running');
        this.pump();
        break;
      case 'cancel':
        if (j.state === 'done' || j.state === 'cancelled' || j.state === 'failed') conflict('it has finished');
        if (this.run?.id === id) this.deactivate();
        this.store.updateJob(id, { state: 'cancelled', finished_at: Date.now() });
        this.emit({ type: 'job', jobId: id, state: 'cancelled' });
        this.pump();
        break;
    }
    return this.summary(id);
  }

  private setState(id: string, state: JobState): void {
    this.store.updateJob(id, { state });
    this.emit({ type: 'job', jobId: id, state });
  }

  /** Loads a job into memory: data, partitions, weights from its checkpoint (or the seed), the current iteration's tasks. */
  private async activate(j: JobRow, recovering: boolean): Promise<void> {
    const cfg = JSON.parse(j.config) as JobConfig;
    const data = await this.opts.loadData(cfg);
    const plan = new TrainingPlan(cfg, data.train.count);
    const mode = new JobMode(cfg, plan);
    this.setResultLimit(cfg);
    const optimizer = new MomentumSgd();
    let params: Params;
    let iteration = 0;
    let resumedPublished: Params | undefined;
    if (j.checkpoint_path && existsSync(j.checkpoint_path)) {
      const ck = loadCheckpoint(j.checkpoint_path, cfg);
      params = ck.params;
      mode.restore(optimizer, ck.velocity);
      iteration = ck.iteration;
      resumedPublished = ck.published;
    } else {
      params = initParams(cfg);
    }
    if (recovering) {
      const dropped = this.store.dropFrom(j.id, iteration);
      this.log(`job ${j.id}: resuming at iteration ${iteration} from ${j.checkpoint_path ?? 'the seed'} (was at ${j.iteration}; dropped ${dropped.tasks} tasks, ${dropped.leases} leases after the checkpoint)`);
    }
    const partitions: PartitionBlob[] = [];
    for (const part of partitionDataset(data.train, cfg.partitions)) {
      const bytes = encodePartition(part);
      const hash = this.putBlob(bytes, PARTITION_TYPE);
      partitions.push({ index: part.index, lo: part.lo, hi: part.hi, hash, bytes: bytes.length });
    }
    const summer = createSummer(this.opts.summer);
    const aggregator: Aggregator & { maxTargets(n: number): number } =
      this.opts.aggregator === 'flat' ? new FlatAggregator(summer) : new TreeAggregator(this.opts.fanIn, summer);
    if (summer instanceof SimdSummer) {
      let floats = 0;
      for (const sh of tensorShapes(cfg).values()) floats += Math.ceil(sh.reduce((a, b) => a * b, 1) / 4) * 4;
      summer.reserve(floats, aggregator.maxTargets(cfg.partitions), this.opts.maxConcurrentUploads, this.resultLimit);
    }
    this.run = {
      id: j.id,
      cfg,
      plan,
      mode,
      params,
      optimizer,
      shapes: tensorShapes(cfg),
      partitions,
      test: data.test,
      iteration,
      it: null,
      gradShapes: new Map(),
      weights: null,
      deltas: [],
      resumedPublished,
      trainCount: data.train.count,
      slots: [],
      aggregator,
      summer,
      startedAt: Date.now(),
      bytesIn: 0,
      bytesOut: 0,
    };
    this.store.updateJob(j.id, { iteration });
    if (iteration >= mode.total) {
      this.finishJob();
      return;
    }
    this.publishWeights(null);
    this.startIteration();
    this.emit({ type: 'job', jobId: j.id, state: this.jobRow(j.id).state });
  }

  private deactivate(): void {
    const run = this.run;
    if (!run) return;
    for (const l of this.leases.values()) if (l.jobId === run.id && l.state === 'active') l.state = 'expired';
    for (const p of run.partitions) this.blobs.delete(p.hash);
    if (run.weights) this.retireWeights(run.weights.hash);
    for (const d of run.deltas) this.retireWeights(d.hash);
    this.run = null;
  }

  private putBlob(bytes: Uint8Array, type: string, reuse = false): string {
    const hash = createHash('sha256').update(bytes).digest('hex');
    if (this.blobs.has(hash)) {
      // The same content is already served (e.g. weights republished on resume): keep that entry.
      if (reuse) this.spareWeights(bytes);
      return hash;
    }
    this.blobs.set(hash, { bytes, type, sending: 0, retired: false, reuse });
    this.goneBlobs.delete(hash);
    return hash;
  }

  private retireWeights(hash: string): void {
    const b = this.blobs.get(hash);
    this.blobs.delete(hash);
    this.goneBlobs.add(hash);
    if (this.goneBlobs.size > 10_000) this.goneBlobs.clear();
    if (b) {
      b.retired = true;
      if (b.reuse && b.sending === 0) this.spareWeights(b.bytes);
    }
  }

  /**
   * Buffers for the weights blobs of later versions: writing reused memory
   * is several times faster than fresh pages, which the OS must map in first.
   * A buffer comes here only once nothing serves or sends it any more.
   */
  private readonly weightsBuffers: Uint8Array[] = [];

  private spareWeights(bytes: Uint8Array): void {
    if (this.weightsBuffers.length < 2) this.weightsBuffers.push(new Uint8Array(bytes.buffer));
  }

  /**
   * Marks a blob as being sent; the returned function ends that. The HTTP
   * layer calls it when the response is done (a weights buffer is reused only
   * after its last response has ended, so no client can read a later
   * version's bytes under this hash); where no end is reported, the buffer
   * is simply never reused.
   */
  holdBlob(hash: string): () => void {
    const b = this.blobs.get(hash);
    if (!b) return () => undefined;
    b.sending++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      b.sending--;
      if (b.retired && b.reuse && b.sending === 0) this.spareWeights(b.bytes);
    };
  }

  /**
   * Publishes the weights of version t = run.iteration: whole, and with a
   * training config the delta from t - 1 too, `prevStep` being the step
   * whose update led here (null: the first publication of this activation).
   */
  private publishWeights(prevStep: Step | null): void {
    const tPublish = performance.now();
    const run = this.run!;
    const t = run.iteration;
    const prev = run.weights;
    const spare = this.weightsBuffers.pop();
    const pub = run.mode.publish(run.id, run.shapes, run.params, t, prevStep, spare, run.resumedPublished);
    run.resumedPublished = undefined;
    const bytes = pub.blob;
    if (spare && bytes.buffer === spare.buffer) this.perf.weightsReused++;
    const hash = this.putBlob(bytes, SAFETENSORS_TYPE, true);
    run.weights = { hash, bytes: bytes.length, version: t };
    // The previous version stays one iteration longer for slow downloads of a stale lease; older ones go.
    if (prev && prev.hash !== hash) {
      const older = this.previousWeights;
      if (older && older !== hash) this.retireWeights(older);
      this.previousWeights = prev.hash;
    }
    if (pub.delta && prev) {
      const dh = this.putBlob(pub.delta, SAFETENSORS_TYPE);
      run.deltas.push({ hash: dh, bytes: pub.delta.length, from: prev.version, fromHash: prev.hash });
    } else {
      // a new chain (the job's first publication here): older deltas lead nowhere
      for (const d of run.deltas) this.retireWeights(d.hash);
      run.deltas = [];
    }
    // a worker up to DELTA_HISTORY versions behind follows by deltas; one further behind downloads whole weights
    while (run.deltas.length > DELTA_HISTORY) this.retireWeights(run.deltas.shift()!.hash);
    this.perf.publishSeconds += (performance.now() - tPublish) / 1000;
  }

  /** Creates the tasks of step t = run.iteration, whose weights are published. */
  private startIteration(): void {
    const tPublish = performance.now();
    const run = this.run!;
    const t = run.iteration;
    const it = run.mode.at(t);
    run.it = it;
    run.gradShapes = new Map(phaseTensors(run.cfg, it.phase).map((n) => [n, run.shapes.get(n)!]));
    run.slots = run.partitions.map((p) => ({
      id: `${run.id}:${t}:${p.index}`,
      partition: p.index,
      state: 'pending' as const,
      leaseId: null,
      workerId: null,
      attempts: 0,
      expected: run.mode.expected(it, p.lo, p.hi),
    }));
    this.store.tx(() => {
      for (const s of run.slots) {
        this.store.insertTask({
          id: s.id,
          job_id: run.id,
          iteration: t,
          partition: s.partition,
          state: 'pending',
          lease_id: null,
          worker_id: null,
          attempts: 0,
          count: s.expected,
          done_at: null,
        });
      }
    });
    run.aggregator.begin(run.slots.map((s) => s.id));
    run.startedAt = Date.now();
    run.bytesIn = 0;
    run.bytesOut = 0;
    this.perf.publishSeconds += (performance.now() - tPublish) / 1000;
    this.perf.iterations++;
    if (it.phaseStart) this.emit({ type: 'phase', jobId: run.id, phase: phaseName(it.phase), iteration: t });
    // Drop leases of iterations two or more back from memory (the ledger keeps them).
    for (const [id, l] of this.leases) if (l.iteration < t - 1 || l.jobId !== run.id) this.leases.delete(id);
    this.pump();
  }

  private previousWeights: string | null = null;

  /** Where the coordinator's time goes (benchmarks): seconds and bytes since start. */
  readonly perf = { results: 0, validateSeconds: 0, aggregateSeconds: 0, aggregateBytes: 0, updateSeconds: 0, slotBodies: 0, publishSeconds: 0, iterations: 0, checkpointFailures: 0, weightsReused: 0 };

  /** Applies the update once coverage is complete; records metrics; checkpoints; moves on. */
  private completeIteration(): void {
    const run = this.run!;
    const it = run.it!;
    const tFinish = performance.now();
    const summedBefore = run.aggregator.bytesSummed;
    const total = run.aggregator.finish();
    this.perf.aggregateSeconds += (performance.now() - tFinish) / 1000;
    this.perf.aggregateBytes += run.aggregator.bytesSummed - summedBefore;
    const tUpdate = performance.now();
    run.mode.update(run.params, run.optimizer, it, total.grads, total.count, total.covers.size);
    this.perf.updateSeconds += (performance.now() - tUpdate) / 1000;
    const t = run.iteration;
    const row: IterationMetricsRow = {
      iteration: t,
      phase: phaseName(it.phase),
      loss: total.count ? total.loss / total.count : 0,
      accuracy: total.count ? total.correct / total.count : 0,
      count: total.count,
      tasks: total.covers.size,
      seconds: (Date.now() - run.startedAt) / 1000,
      bytesIn: run.bytesIn,
      bytesOut: run.bytesOut,
    };
    run.iteration = t + 1;
    const done = run.iteration >= run.mode.total;
    // The next version, before the checkpoint keeps it and the evaluation reads the (at a phase end, snapped) weights;
    // with a training config also after the last step, as the in-process trainer does.
    if (!done || run.mode.training) this.publishWeights(it);
    this.store.tx(() => {
      this.store.insertIteration({
        job_id: run.id,
        iteration: t,
        phase: row.phase,
        loss: row.loss,
        accuracy: row.accuracy,
        count: row.count,
        tasks: row.tasks,
        seconds: row.seconds,
        bytes_in: row.bytesIn,
        bytes_out: row.bytesOut,
        done_at: Date.now(),
      });
      this.store.updateJob(run.id, { iteration: run.iteration });
    });
    this.emit({ type: 'iteration', jobId: run.id, metrics: row });
    if (it.phaseEnd || done || run.iteration % run.cfg.checkpointEvery === 0) this.tryCheckpoint();
    if (it.phaseEnd || done) this.scheduleEvaluation(run, t, phaseName(it.phase));
    if (done) {
      this.finishJob();
      return;
    }
    this.startIteration();
  }

  /**
   * A checkpoint that cannot be written (disk full, folder gone) must not stop
   * the job: the previous checkpoint stays valid (writes are atomic), training
   * goes on in memory, and the next checkpoint tries again. Counted in
   * `perf.checkpointFailures` and logged.
   */
  private tryCheckpoint(): void {
    try {
      this.checkpoint();
    } catch (e) {
      const run = this.run!;
      this.perf.checkpointFailures++;
      const last = this.store.job(run.id)?.checkpoint_iteration ?? 0;
      this.log(`checkpoint at iteration ${run.iteration} failed (${(e as Error).message}); training goes on, the last good checkpoint is at iteration ${last}`);
    }
  }

  /** Writes params + velocities for the next iteration atomically, then points the job row at it. */
  private checkpoint(): void {
    const run = this.run!;
    const dir = join(this.opts.dataDir, 'jobs', run.id);
    mkdirSync(dir, { recursive: true });
    const path = join(dir, `checkpoint-${String(run.iteration).padStart(8, '0')}.safetensors`);
    const published = run.mode.published;
    saveCheckpoint(path, { iteration: run.iteration, params: run.params, velocity: run.mode.velocity(run.optimizer), config: run.cfg, ...(published ? { published } : {}) });
    const old = this.store.job(run.id)?.checkpoint_path;
    this.store.updateJob(run.id, { checkpoint_iteration: run.iteration, checkpoint_path: path });
    this.emit({ type: 'checkpoint', jobId: run.id, iteration: run.iteration });
    this.pruneCheckpoints(dir, old ?? null, path);
  }

  private readonly checkpointHistory = new Map<string, string[]>();

  private pruneCheckpoints(dir: string, old: string | null, path: string): void {
    const list = this.checkpointHistory.get(dir) ?? (old ? [old] : []);
    list.push(path);
    while (list.length > this.opts.keepCheckpoints) {
      const victim = list.shift()!;
      if (victim !== path) rmSync(victim, { force: true });
    }
    this.checkpointHistory.set(dir, list);
  }

  private finishJob(): void {
    const run = this.run!;
    const id = run.id;
    // The job is done once its final evaluation is recorded.
    this.evalChain = this.evalChain.then(() => {
      this.store.updateJob(id, { state: 'done', finished_at: Date.now() });
      this.emit({ type: 'job', jobId: id, state: 'done' });
      if (this.run?.id === id) this.deactivate();
      this.pump();
    });
    this.pump();
  }

  /** Test error of a snapshot of the weights, off the request path (yields between batches). */
  private scheduleEvaluation(run: ActiveRun, iteration: number, phase: string): void {
    const make = this.opts.evalBackend;
    if (!make || run.test.count === 0) return;
    const params = cloneParams(run.params);
    this.evalChain = this.evalChain.then(async () => {
      try {
        this.evalBackendP ??= make();
        const backend = await this.evalBackendP;
        const ev = await evaluate(backend, run.cfg, params, run.test, 250);
        if (this.closed) return;
        this.store.insertEvaluation({
          job_id: run.id, iteration, phase, test_error: ev.error, test_loss: ev.loss, at: Date.now(), confusion: JSON.stringify(Array.from(ev.confusion)),
        });
        this.emit({ type: 'evaluation', jobId: run.id, iteration, phase, testError: ev.error, testLoss: ev.loss });
        this.log(`job ${run.id}: after iteration ${iteration} (${phase}) test error ${(ev.error * 100).toFixed(2)}%`);
      } catch (e) {
        this.log(`job ${run.id}: evaluation failed: ${(e as Error).message}`);
      }
    });
  }

  /** Resolves when pending evaluations (and the job's completion) are recorded. */
  idle(): Promise<void> {
    return this.evalChain;
  }

  summary(id: string): JobSummary {
    const j = this.jobRow(id);
    const cfg = JSON.parse(j.config) as JobConfig;
    const run = this.run?.id === id ? this.run : null;
    const plan = run?.plan ?? (j.train_count >= cfg.partitions ? new TrainingPlan(cfg, j.train_count) : null);
    const mode = run?.mode ?? (plan ? new JobMode(cfg, plan) : null);
    const phases: JobSummary['phases'] = mode ? mode.phases() : [];
    const phase = mode && j.iteration < mode.total ? phaseName(mode.at(j.iteration).phase) : '';
    const counts = this.store.taskCounts(id);
    const evals = this.store.evaluations(id);
    const last = evals[evals.length - 1];
    return {
      id,
      name: j.name,
      state: j.state,
      config: cfg,
      iteration: j.iteration,
      totalIterations: j.total_iterations,
      phase,
      phases,
      checkpointIteration: j.checkpoint_iteration,
      createdAt: j.created_at,
      startedAt: j.started_at,
      finishedAt: j.finished_at,
      tasks: counts,
      lateResults: j.late_results,
      rejectedResults: j.rejected_results,
      lastEvaluation: last ? { iteration: last.iteration, phase: last.phase, testError: last.test_error, testLoss: last.test_loss } : null,
      error: j.error,
    };
  }

  jobs(): JobSummary[] {
    return this.store.jobs().map((j) => this.summary(j.id));
  }

  metrics(id: string, since = 0): { iterations: IterationMetricsRow[]; evaluations: { iteration: number; phase: string; testError: number; testLoss: number; confusion?: number[] }[] } {
    this.jobRow(id);
    return {
      iterations: this.store.iterations(id, since).map((r) => ({
        iteration: r.iteration,
        phase: r.phase,
        loss: r.loss,
        accuracy: r.accuracy,
        count: r.count,
        tasks: r.tasks,
        seconds: r.seconds,
        bytesIn: r.bytes_in,
        bytesOut: r.bytes_out,
      })),
      evaluations: this.store.evaluations(id).map((e) => ({
        iteration: e.iteration, phase: e.phase, testError: e.test_error, testLoss: e.test_loss,
        ...(e.confusion ? { confusion: JSON.parse(e.confusion) as number[] } : {}),
      })),
    };
  }

  /** The current weights of a job as safetensors: the active job's live weights, else its last checkpoint's. */
  weightsOf(id: string): Uint8Array {
    const j = this.jobRow(id);
    if (this.run?.id === id) return encodeWeights(this.run.cfg, this.run.params, this.run.shapes, this.run.iteration, id);
    const cfg = JSON.parse(j.config) as JobConfig;
    if (j.checkpoint_path && existsSync(j.checkpoint_path)) {
      const ck = loadCheckpoint(j.checkpoint_path, cfg);
      return encodeWeights(cfg, ck.params, tensorShapes(cfg), ck.iteration, id);
    }
    return encodeWeights(cfg, initParams(cfg), tensorShapes(cfg), 0, id);
  }

  /** The active job's live params (tests compare them with the in-process trainer). */
  activeParams(): Params | null {
    return this.run?.params ?? null;
  }

  publicStatus(): PublicStatus {
    const run = this.run;
    let job: PublicStatus['job'] = null;
    if (run) {
      const j = this.store.job(run.id)!;
      job = { id: run.id, name: run.cfg.name, state: j.state, iteration: run.iteration, totalIterations: run.mode.total, phase: run.it ? phaseName(run.it.phase) : '' };
    }
    let workers = 0;
    for (const w of this.workersById.values()) if (w.row.state === 'active') workers++;
    return { protocol: 1, job, workers };
  }

  // ---------------------------------------------------------------- blobs

  blob(hash: string): Blob {
    const b = this.blobs.get(hash);
    if (b) return b;
    if (this.goneBlobs.has(hash)) throw new HttpError(410, 'gone', `blob ${hash} was the weights of an old version; lease a new task`);
    throw new HttpError(404, 'not-found', `no blob ${hash}`);
  }

  get uploadTimeoutMs(): number {
    return this.opts.uploadTimeoutMs;
  }

  get maxConcurrentUploads(): number {
    return this.opts.maxConcurrentUploads;
  }

  /** WebAssembly memory to read a result body of `bytes` into (so aggregation needs no copy), or null. */
  receiveSlot(bytes: number): ReceiveSlot | null {
    const slot = this.run?.summer.acquireSlot?.(bytes) ?? null;
    if (slot) this.perf.slotBodies++;
    return slot;
  }

  noteBytesOut(n: number): void {
    if (this.run) this.run.bytesOut += n;
  }

  // ---------------------------------------------------------------- workers

  register(req: RegisterRequest): RegisterResponse {
    const token = randomBytes(24).toString('base64url');
    const now = Date.now();
    const row: WorkerRow = {
      id: `w-${randomBytes(4).toString('hex')}`,
      token_hash: sha256Hex(token),
      name: req.name,
      runtime: req.runtime,
      backend: req.backend,
      adapter: req.adapter,
      state: 'active',
      joined_at: now,
      last_seen: now,
      tasks_done: 0,
      examples_done: 0,
      examples_per_second: 0,
      bytes_up: 0,
      bytes_down: 0,
      rejected: 0,
      late: 0,
    };
    this.store.insertWorker(row);
    const w: Worker = { row, cached: new Set(req.cached ?? []) };
    this.workersByToken.set(row.token_hash, w);
    this.workersById.set(row.id, w);
    this.emit({ type: 'worker', workerId: row.id, change: 'joined' });
    return { workerId: row.id, token, heartbeatMs: this.opts.heartbeatMs, maxResultBytes: this.maxResultBytes };
  }

  /** The worker a token belongs to; 401 for none. Marks it seen (and active again if it was lost). */
  authenticate(token: string | undefined): Worker {
    const w = token ? this.workersByToken.get(sha256Hex(token)) : undefined;
    if (!w) throw new HttpError(401, 'unauthorized', 'missing or unknown worker token: register with POST /api/v1/workers');
    // A worker that left (e.g. its tab closed) stays gone: a late request of its own must not bring it back.
    if (w.row.state === 'left') throw new HttpError(401, 'worker-left', 'this worker left the grid; register again (POST /api/v1/workers) to rejoin');
    w.row.last_seen = Date.now();
    if (w.row.state === 'lost') {
      w.row.state = 'active';
      this.store.updateWorker(w.row.id, { state: 'active' });
      this.emit({ type: 'worker', workerId: w.row.id, change: 'joined' });
    }
    return w;
  }

  heartbeat(w: Worker, req: HeartbeatRequest): HeartbeatResponse {
    const s: WorkerStats = req.stats;
    if (req.cached) w.cached = new Set(req.cached);
    w.row.examples_per_second = s.examplesPerSecond;
    w.row.bytes_up = s.bytesUp;
    w.row.bytes_down = s.bytesDown;
    this.store.updateWorker(w.row.id, {
      last_seen: w.row.last_seen,
      examples_per_second: s.examplesPerSecond,
      bytes_up: s.bytesUp,
      bytes_down: s.bytesDown,
    });
    const run = this.run;
    if (!run) return { job: null };
    return { job: { id: run.id, state: this.store.job(run.id)!.state, iteration: run.iteration } };
  }

  leave(w: Worker): void {
    w.row.state = 'left';
    this.store.updateWorker(w.row.id, { state: 'left', last_seen: Date.now() });
    this.releaseLeasesOf(w.row.id, 'returned');
    // Its long-polls end empty (a lease issued to it now would only expire).
    for (const x of this.waiters.filter((x) => x.worker === w)) {
      clearTimeout(x.timer);
      x.resolve(this.noLease('no-job'));
    }
    this.waiters = this.waiters.filter((x) => x.worker !== w);
    // The token stays known, so its late requests get 401 worker-left (authenticate).
    this.emit({ type: 'worker', workerId: w.row.id, change: 'left' });
  }

  workers(): WorkerView[] {
    return [...this.workersById.values()].map(({ row: r }) => ({
      id: r.id,
      name: r.name,
      runtime: r.runtime,
      backend: r.backend,
      adapter: r.adapter,
      state: r.state,
      tasksDone: r.tasks_done,
      examplesDone: r.examples_done,
      examplesPerSecond: r.examples_per_second,
      bytesUp: r.bytes_up,
      bytesDown: r.bytes_down,
      rejected: r.rejected,
      late: r.late,
      joinedAt: r.joined_at,
      lastSeen: r.last_seen,
    }));
  }

  // ---------------------------------------------------------------- leasing

  /**
   * A lease now (and up to maxTasks - 1 more of the same iteration), or after
   * a long-poll of up to waitMs, or the reason there is none.
   */
  lease(w: Worker, cached: readonly string[] | undefined, waitMs: number, maxTasks = 1): Promise<LeaseResponse> {
    if (cached) w.cached = new Set(cached);
    const now = this.tryLease(w, maxTasks);
    const wait = Math.min(Math.max(0, waitMs), this.opts.maxLeaseWaitMs);
    if (now.lease || now.reason === 'done' || wait === 0) return Promise.resolve(now);
    return new Promise((resolve) => {
      const waiter: Waiter = {
        worker: w,
        maxTasks,
        resolve,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter((x) => x !== waiter);
          resolve(this.tryLease(w, maxTasks));
        }, wait),
      };
      this.waiters.push(waiter);
    });
  }

  private noLease(reason: 'no-job' | 'paused' | 'waiting' | 'done'): LeaseResponse {
    const retryAfterMs = reason === 'waiting' ? 200 : reason === 'done' ? 5_000 : 2_000;
    return { lease: null, reason, retryAfterMs };
  }

  /**
   * Leases pending tasks to the worker: up to maxTasks, but no more than its
   * share of what is pending among it and the workers waiting for tasks.
   */
  private tryLease(w: Worker, maxTasks = 1): LeaseResponse {
    if (w.row.state === 'left') return this.noLease('no-job');
    const run = this.run;
    if (!run) return this.noLease(this.store.jobs().some((j) => j.state === 'done') ? 'done' : 'no-job');
    const state = this.store.job(run.id)!.state;
    if (state === 'paused') return this.noLease('paused');
    if (run.iteration >= run.mode.total || !run.it) return this.noLease('done');
    const pending = run.slots.filter((s) => s.state === 'pending').length;
    const others = this.waiters.filter((x) => x.worker !== w).length;
    const k = Math.min(maxTasks, Math.ceil(pending / (1 + others)));
    const slots: TaskSlot[] = [];
    while (slots.length < k) {
      const slot = this.pick(run, w);
      if (!slot) break;
      slot.state = 'leased'; // taken: the next pick skips it (issue() below records the lease)
      slots.push(slot);
    }
    if (!slots.length) return this.noLease('waiting');
    // A bundle is computed in one go: each of its leases gets the time of all.
    const timeoutMs = this.opts.leaseTimeoutMs * slots.length;
    const [first, ...more] = slots.map((s) => this.issue(run, s, w, timeoutMs));
    return more.length ? { lease: first!, more } : { lease: first! };
  }

  /**
   * A pending task for the worker: one whose partition it has cached if any;
   * else the one whose partition the fewest other active workers hold,
   * leaving cached partitions to the workers that have them.
   */
  private pick(run: ActiveRun, w: Worker): TaskSlot | null {
    let best: TaskSlot | null = null;
    let bestScore = Infinity;
    for (const s of run.slots) {
      if (s.state !== 'pending') continue;
      const hash = run.partitions[s.partition]!.hash;
      if (w.cached.has(hash)) {
        best = s;
        break;
      }
      let holders = 0;
      for (const o of this.workersById.values()) if (o !== w && o.row.state === 'active' && o.cached.has(hash)) holders++;
      if (holders < bestScore) {
        bestScore = holders;
        best = s;
      }
    }
    return best;
  }

  private issue(run: ActiveRun, slot: TaskSlot, w: Worker, timeoutMs: number): TaskLease {
    const now = Date.now();
    const id = randomUUID();
    const deadline = now + timeoutMs;
    slot.state = 'leased';
    slot.leaseId = id;
    slot.workerId = w.row.id;
    slot.attempts++;
    const t = run.iteration;
    this.leases.set(id, { id, jobId: run.id, taskId: slot.id, partition: slot.partition, iteration: t, workerId: w.row.id, deadline, state: 'active' });
    this.store.tx(() => {
      this.store.insertLease({ id, task_id: slot.id, job_id: run.id, iteration: t, worker_id: w.row.id, issued_at: now, deadline, state: 'active', closed_at: null });
      this.store.updateTask(slot.id, { state: 'leased', lease_id: id, worker_id: w.row.id, attempts: slot.attempts });
    });
    const p = run.partitions[slot.partition]!;
    const weights = run.weights!;
    return {
      leaseId: id,
      taskId: slot.id,
      jobId: run.id,
      iteration: t,
      phase: run.it!.phase,
      config: run.cfg,
      weights: { hash: weights.hash, bytes: weights.bytes, version: weights.version },
      partition: { hash: p.hash, bytes: p.bytes, index: p.index, lo: p.lo, hi: p.hi },
      sample: { fraction: run.it!.fraction, count: slot.expected },
      ...(run.mode.local ? { local: { round: t, trainCount: run.trainCount } } : {}),
      ...(run.deltas.length ? { deltas: [...run.deltas] } : {}),
      timeoutMs,
    };
  }

  /** Hands pending tasks to waiting long-polls: workers with the partition cached first. */
  private pump(): void {
    if (!this.waiters.length) return;
    const run = this.run;
    const pendingHashes = new Set<string>();
    if (run) for (const s of run.slots) if (s.state === 'pending') pendingHashes.add(run.partitions[s.partition]!.hash);
    const ordered = [
      ...this.waiters.filter((x) => [...x.worker.cached].some((h) => pendingHashes.has(h))),
      ...this.waiters.filter((x) => ![...x.worker.cached].some((h) => pendingHashes.has(h))),
    ];
    for (const waiter of ordered) {
      const r = this.tryLease(waiter.worker, waiter.maxTasks);
      if (!r.lease && r.reason === 'waiting') continue;
      if (!r.lease && (r.reason === 'paused' || r.reason === 'no-job')) continue;
      clearTimeout(waiter.timer);
      this.waiters = this.waiters.filter((x) => x !== waiter);
      waiter.resolve(r);
    }
  }

  /** Gives a lease back (the worker is stopping). */
  returnLease(w: Worker, leaseId: string): void {
    const l = this.findLease(leaseId);
    if (l.workerId !== w.row.id) throw new HttpError(403, 'foreign-lease', `lease ${leaseId} belongs to another worker`);
    if (l.state !== 'active') return;
    this.expireLease(l, 'returned');
  }

  private releaseLeasesOf(workerId: string, how: 'returned' | 'expired'): void {
    for (const l of this.leases.values()) if (l.workerId === workerId && l.state === 'active') this.expireLease(l, how);
  }

  /** Ends a lease unanswered and sends its task back to the pool (if it is still the task's lease). */
  private expireLease(l: LeaseInfo, how: 'returned' | 'expired'): void {
    l.state = how;
    const now = Date.now();
    this.store.closeLease(l.id, how, now);
    const run = this.run;
    if (run && run.id === l.jobId && run.iteration === l.iteration) {
      const slot = run.slots[l.partition]!;
      if (slot.leaseId === l.id && slot.state === 'leased') {
        slot.state = 'pending';
        slot.leaseId = null;
        slot.workerId = null;
        this.store.updateTask(slot.id, { state: 'pending', lease_id: null, worker_id: null });
        this.log(`lease ${l.id} of task ${l.taskId} ${how}; re-issuing`);
      }
    }
    this.pump();
  }

  /** Expires overdue leases and leases of silent workers. */
  sweep(): void {
    const now = Date.now();
    for (const l of this.leases.values()) if (l.state === 'active' && now > l.deadline) this.expireLease(l, 'expired');
    for (const w of this.workersById.values()) {
      if (w.row.state === 'active' && now - w.row.last_seen > this.opts.workerTimeoutMs) {
        w.row.state = 'lost';
        this.store.updateWorker(w.row.id, { state: 'lost', last_seen: w.row.last_seen });
        this.releaseLeasesOf(w.row.id, 'expired');
        this.emit({ type: 'worker', workerId: w.row.id, change: 'lost' });
      }
    }
  }

  private findLease(leaseId: string): LeaseInfo {
    const l = this.leases.get(leaseId);
    if (l) return l;
    const row = this.store.lease(leaseId);
    if (!row) throw new HttpError(404, 'unknown-lease', `no lease ${leaseId}: lease a task with POST ${PATHS.lease}`);
    const partition = Number(row.task_id.split(':').pop());
    return { id: row.id, jobId: row.job_id, taskId: row.task_id, partition, iteration: row.iteration, workerId: row.worker_id, deadline: row.deadline, state: row.state };
  }

  // ---------------------------------------------------------------- results

  /**
   * Validates a result completely, then (only then) records and aggregates
   * it. Any failure throws HttpError and changes nothing but the rejected /
   * late counters.
   */
  submitResult(w: Worker, leaseId: string, body: Uint8Array): ResultAck {
    const l = this.findLease(leaseId);
    const reject = (e: HttpError): never => {
      w.row.rejected++;
      this.store.updateWorker(w.row.id, { rejected: w.row.rejected });
      this.store.bumpJob(l.jobId, 'rejected_results');
      throw e;
    };
    const run = this.run;
    /** The open task slot this worker's lease answers; refuses a foreign, answered or late lease. */
    const openSlot = (x: LeaseInfo): TaskSlot => {
      if (x.workerId !== w.row.id) reject(new HttpError(403, 'foreign-lease', `lease ${x.id} was issued to another worker`));
      if (x.state === 'done') reject(new HttpError(409, 'duplicate-result', `lease ${x.id} was already answered; its result counts once`));
      const late = (why: string): never => {
        w.row.late++;
        this.store.updateWorker(w.row.id, { late: w.row.late });
        this.store.bumpJob(l.jobId, 'late_results');
        throw new HttpError(410, 'lease-expired', `lease ${x.id} ${why}; the result was dropped, lease a new task`);
      };
      if (x.state === 'active' && Date.now() > x.deadline) this.expireLease(x, 'expired');
      if (x.state !== 'active') late(`${x.state === 'returned' ? 'was returned' : 'expired'} before the result came`);
      if (!run || run.id !== x.jobId || run.iteration !== x.iteration) late('belongs to an iteration that is over');
      const slot = run!.slots[x.partition]!;
      if (slot.state === 'done' || slot.leaseId !== x.id) late('was superseded: the task was re-issued');
      return slot;
    };
    const slot = openSlot(l);

    const tStart = performance.now();
    let decoded;
    try {
      decoded = run!.mode.decode(body, run!.gradShapes);
    } catch (e) {
      if (e instanceof ProtocolError) return reject(new HttpError(e.status, e.code, e.message));
      throw e;
    }
    const { meta, tensors: grads } = decoded;
    if (meta.leaseId !== l.id || meta.taskId !== l.taskId) {
      reject(new HttpError(400, 'malformed-result', `metadata names lease ${meta.leaseId} / task ${meta.taskId}, the upload is for lease ${l.id} / task ${l.taskId}`));
    }
    // A bundle: the other leases of this iteration the result sums in (LeaseResponse.more).
    const ids = meta.bundle ?? [];
    if (new Set([l.id, ...ids]).size !== ids.length + 1) reject(new HttpError(400, 'malformed-result', `"bundle" names a lease twice`));
    const bundled = ids.map((id) => {
      const x = this.leases.get(id) ?? (this.store.lease(id) ? this.findLease(id) : null);
      if (!x) return reject(new HttpError(404, 'unknown-lease', `"bundle" names lease ${id}, which was never issued`));
      return { lease: x, slot: openSlot(x) };
    });
    const all = [{ lease: l, slot }, ...bundled];
    if (meta.weightsVersion !== l.iteration) {
      reject(new HttpError(409, 'stale-weights', `result computed on weights version ${meta.weightsVersion}, the lease is for version ${l.iteration}`));
    }
    if (run!.mode.training && meta.weightsHash !== run!.weights!.hash) {
      reject(new HttpError(409, 'unknown-version', `result computed on weights ${meta.weightsHash}, which this coordinator did not publish as version ${l.iteration} (${run!.weights!.hash}): apply the lease's delta only to the version it names, else download the whole weights`));
    }
    const expected = all.reduce((n, x) => n + x.slot.expected, 0);
    if (meta.count !== expected) {
      reject(new HttpError(422, 'count-mismatch', `result counts ${meta.count} examples, the ${all.length > 1 ? `${all.length} tasks sample` : 'task samples'} ${expected}`));
    }
    let sq = 0;
    for (const [name, g] of grads) {
      sq += sumSquares(g);
      if (!Number.isFinite(sq)) {
        for (let i = 0; i < g.length; i++) {
          if (!Number.isFinite(g[i]!)) reject(new HttpError(422, 'non-finite', `gradient "${name}" holds ${g[i]} at index ${i}`));
        }
      }
    }
    const norm = Math.sqrt(sq);
    const bound = this.opts.normBoundPerExample * Math.max(1, meta.count);
    if (norm > bound) reject(new HttpError(422, 'norm-bound', `gradient L2 norm ${norm.toExponential(3)} exceeds the bound ${bound.toExponential(3)} for ${meta.count} examples`));

    // Valid: record, aggregate.
    const tAgg = performance.now();
    const summedBefore = run!.aggregator.bytesSummed;
    const taskIds = all.map((x) => x.slot.id);
    const outcome = run!.aggregator.add(taskIds, { grads, loss: meta.loss, correct: meta.correct, count: meta.count });
    this.perf.aggregateSeconds += (performance.now() - tAgg) / 1000;
    this.perf.aggregateBytes += run!.aggregator.bytesSummed - summedBefore;
    this.perf.validateSeconds += (tAgg - tStart) / 1000;
    this.perf.results++;
    if (outcome !== 'added') throw new Error(`aggregator refused tasks ${taskIds.join(', ')} (${outcome}) although the ledger had them open`);
    const now = Date.now();
    for (const x of all) {
      x.lease.state = 'done';
      x.slot.state = 'done';
    }
    w.row.tasks_done += all.length;
    w.row.examples_done += meta.count;
    run!.bytesIn += body.length;
    this.store.tx(() => {
      for (const x of all) {
        this.store.closeLease(x.lease.id, 'done', now);
        this.store.updateTask(x.slot.id, { state: 'done', done_at: now });
      }
      this.store.updateWorker(w.row.id, { tasks_done: w.row.tasks_done, examples_done: w.row.examples_done, last_seen: now });
    });
    const ack: ResultAck = { accepted: true, taskId: slot.id, iteration: l.iteration, covered: run!.aggregator.covered, of: run!.aggregator.expected };
    if (run!.aggregator.complete()) this.completeIteration();
    return ack;
  }

  /** Stops timers, answers long-polls, closes the database. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.resolve(this.noLease('no-job'));
    }
    this.waiters = [];
    await this.evalChain.catch(() => undefined);
    if (this.evalBackendP) (await this.evalBackendP).dispose();
    this.store.close();
  }
}

/** Sum of squares (NaN or Infinity when any value is not finite), with four accumulators. */
export function sumSquares(g: Float32Array): number {
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  const n = g.length;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const a = g[i]!, b = g[i + 1]!, c = g[i + 2]!, d = g[i + 3]!;
    s0 += a * a;
    s1 += b * b;
    s2 += c * c;
    s3 += d * d;
  }
  for (; i < n; i++) s0 += g[i]! * g[i]!;
  return s0 + s1 + s2 + s3;
}

