/**
 * The coordinator's engine, free of HTTP, wired from its parts: the blobs
 * (blobs.ts), the workers (workers.ts), the lease book (leasing.ts), a job's
 * life in memory (lifecycle.ts, run.ts), a result from upload to ledger
 * (results.ts, intake.ts), the checks by recomputation (checking.ts, the
 * glue to coordinator/trust/), peer-to-peer trees (p2p-rounds.ts,
 * p2p-wiring.ts), the views (views.ts) and the SQLite ledger (store.ts).
 * coordinator/http/ maps HTTP onto it; tests may call it directly. Every
 * refusal is a DomainError (an error code and a detail); no method takes or
 * returns an HTTP object or a database row.
 *
 * One iteration (synchronous, as in Spark): weights of version t are
 * published as a blob; one task per partition is created; each task is
 * leased to a worker with a deadline; an expired lease sends its task back to
 * the pool; the first valid result for a task is aggregated; when coverage is
 * complete the momentum-SGD update runs and t becomes t + 1.
 *
 * Everything between reading a request body and answering runs without an
 * await, so no two results interleave inside validation or aggregation.
 *
 * About 450 lines: this is the engine's whole public API (some forty
 * methods, most of them a few lines that hand over to one of the parts)
 * and the wiring of the parts; what they do lives in the parts.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, parseJobConfig, type JobConfig } from '../../core/model/config.ts';
import { initParams, tensorShapes, type Params } from '../../core/model/params.ts';
import { TrainingPlan } from '../../core/model/plan.ts';
import {
  encodeWeights,
  type HeartbeatRequest,
  type HeartbeatResponse,
  type JobAction,
  type JobEvent,
  type JobMetrics,
  type JobState,
  type JobSummary,
  type LeaseResponse,
  type PublicStatus,
  type RegisterRequest,
  type RegisterResponse,
  type ResultAck,
  type WorkerView,
  type JoinRequest,
  type JoinResponse,
  type RoundResponse,
} from '../../core/protocol/index.ts';
import type { ReceiveSlot } from '../aggregate/index.ts';
import { BlobStore, type Blob } from './blobs.ts';
import { loadCheckpoint } from './checkpoint.ts';
import { ResultChecks } from './checking.ts';
import { dataFitIssues } from './data-fit.ts';
import { DomainError } from './errors.ts';
import { EventBus } from './events.ts';
import { LeaseBook } from './leasing.ts';
import { P2PRounds } from './p2p-rounds.ts';
import { Lifecycle } from './lifecycle.ts';
import { P2PWiring } from './p2p-wiring.ts';
import { ResultDesk } from './results.ts';
import { withDefaults, type CoordinatorOptions, type ResolvedOptions } from './options.ts';
import { JobMode } from './modes.ts';
import { Checkpointer } from './checkpointer.ts';
import { Evaluator } from './evaluations.ts';
import type { ActiveRun, Perf } from './run.ts';
import { Store } from './store.ts';
import { jobMetrics, jobRow, jobSummary, publicStatus } from './views.ts';
import { WorkerRegistry, type WorkerRef } from './workers.ts';
import { sourceOf } from '../trust/reputation.ts';
import type { TrustRecord, TrustStore } from '../trust/reputation.ts';
import { Verifier } from '../trust/verifier.ts';

export type { CoordinatorOptions } from './options.ts';
export type { TrainTestData } from './run.ts';
export type { WorkerRef } from './workers.ts';
export { checkable } from './checking.ts';

export class Coordinator {
  readonly store: Store;
  readonly events = new EventBus();
  /** Where the coordinator's time goes (benchmarks): seconds and bytes since start. */
  readonly perf: Perf = { results: 0, validateSeconds: 0, aggregateSeconds: 0, aggregateBytes: 0, updateSeconds: 0, slotBodies: 0, publishSeconds: 0, iterations: 0, checkpointFailures: 0, weightsReused: 0 };
  private readonly opts: ResolvedOptions;
  private readonly blobs = new BlobStore();
  private readonly workerRegistry: WorkerRegistry;
  private readonly leases: LeaseBook;
  private readonly checkpoints: Checkpointer;
  private readonly evaluations: Evaluator;
  /** checks results by recomputation (coordinator/trust/); null without a backend to recompute on */
  readonly verifier: Verifier | null;
  /** peer-to-peer trees among tabs (p2p-rounds.ts), and their wiring to the ledger (p2p-wiring.ts) */
  private readonly p2p: P2PRounds;
  private readonly trees: P2PWiring;
  /** counts valid results, or holds them for a check by recomputation (checking.ts) */
  private readonly checks: ResultChecks;
  /** a result from upload to ledger (results.ts) */
  private readonly results: ResultDesk;
  /** the active job's run, from activation to its end (lifecycle.ts) */
  private readonly life: Lifecycle;
  private sweepTimer: ReturnType<typeof setInterval> | null = null;
  private closed = false;

  private constructor(options: CoordinatorOptions) {
    const opts = withDefaults(options);
    this.opts = opts;
    mkdirSync(opts.dataDir, { recursive: true });
    this.store = new Store(join(opts.dataDir, 'state.sqlite'));
    const emit = (e: JobEvent): void => this.events.emit(e);
    const log = (msg: string): void => this.opts.log?.(msg);
    const checkBackend = opts.trust?.backend ?? opts.evalBackend;
    const store = this.store;
    // trust records and source strikes live in the ledger: a ban, a probation, a source's strikes survive a restart
    const trustStore: TrustStore = {
      saveRecord: (r) => store.saveTrustRecord(r.workerId, JSON.stringify(r)),
      addStrike: (source, at, since) => store.addTrustStrike(source, at, since),
      clearStrikes: (source) => store.clearTrustStrikes(source),
    };
    this.verifier = checkBackend ? new Verifier({ policy: opts.trust?.policy, tolerance: opts.trust?.tolerance, random: opts.trust?.random, backend: checkBackend, store: trustStore }) : null;
    this.verifier?.reputation.restore(store.trustRecords().map((r) => JSON.parse(r) as TrustRecord), store.trustStrikes());
    this.workerRegistry = new WorkerRegistry(
      this.store,
      emit,
      (hash) => this.run?.partitions.some((p) => p.hash === hash) ?? false,
      this.verifier && { banned: (id) => this.checks.banned(id), view: (id) => this.checks.trustOf(id) },
    );
    this.leases = new LeaseBook(this.store, this.workerRegistry, { run: () => this.run, idleReason: () => this.life.idleReason() }, {
      leaseTimeoutMs: this.opts.leaseTimeoutMs,
      maxLeaseWaitMs: this.opts.maxLeaseWaitMs,
      maxLeasesPerWorker: this.opts.maxLeasesPerWorker,
      log,
    });
    this.checkpoints = new Checkpointer(this.opts.dataDir, this.opts.keepCheckpoints, this.store, emit, log, this.perf, this.opts.evalBackend !== undefined);
    this.evaluations = new Evaluator(this.opts.evalBackend, this.store, emit, log);
    this.p2p = new P2PRounds(
      { run: () => this.run, idleReason: () => this.life.idleReason(), lease: (w, cached, k) => this.leases.lease(w, cached, 0, k) },
      this.opts.p2p,
    );
    this.life = new Lifecycle({ store: this.store, blobs: this.blobs, leases: this.leases, rounds: this.p2p, checkpoints: this.checkpoints, evaluations: this.evaluations, perf: this.perf, runOptions: opts, evaluating: opts.evalBackend !== undefined, emit, log });
    const parts = { store: this.store, leases: this.leases, workers: this.workerRegistry, log };
    this.trees = new P2PWiring({ ...parts, rounds: this.p2p, maxWaitMs: this.opts.maxLeaseWaitMs });
    this.checks = new ResultChecks({ ...parts, perf: this.perf, run: () => this.run, closed: () => this.closed, completeIteration: () => this.life.completeIteration() }, this.verifier);
    this.results = new ResultDesk({ ...parts, rounds: this.p2p, trees: this.trees, checks: this.checks, perf: this.perf, normBoundPerExample: opts.normBoundPerExample, run: () => this.run, completeIteration: () => this.life.completeIteration() });
  }

  /** Opens the data folder and resumes a job that was running or paused when the process died. */
  static async open(opts: CoordinatorOptions): Promise<Coordinator> {
    const c = new Coordinator(opts);
    const live = c.store.jobs().find((j) => j.state === 'running' || j.state === 'paused');
    try {
      if (live) await c.life.resume(live);
    } catch (e) {
      c.store.close(); // nothing stays open when the data folder cannot be resumed
      throw e;
    }
    const tick = Math.max(20, Math.min(250, Math.floor(c.opts.leaseTimeoutMs / 4)));
    c.sweepTimer = setInterval(() => c.sweep(), tick);
    c.sweepTimer.unref?.();
    return c;
  }

  private get run(): ActiveRun | null {
    return this.life.run;
  }

  get heartbeatMs(): number {
    return this.opts.heartbeatMs;
  }

  /** Largest result body accepted: the model's full gradient plus header slack. */
  get maxResultBytes(): number {
    return this.life.resultLimit;
  }

  get uploadTimeoutMs(): number {
    return this.opts.uploadTimeoutMs;
  }

  get maxConcurrentUploads(): number {
    return this.opts.maxConcurrentUploads;
  }

  private log(msg: string): void {
    this.opts.log?.(msg);
  }

  private emit(e: JobEvent): void {
    this.events.emit(e);
  }

  // ---------------------------------------------------------------- jobs

  async createJob(input: unknown): Promise<JobSummary> {
    let cfg: JobConfig;
    try {
      cfg = parseJobConfig(input);
    } catch (e) {
      if (e instanceof ConfigError) throw new DomainError('bad-request', e.message);
      throw e;
    }
    const data = await this.opts.loadData(cfg);
    const misfit = dataFitIssues(cfg, data);
    if (misfit.length) throw new DomainError('bad-request', `invalid job config: ${misfit.join('; ')}`);
    let plan: TrainingPlan;
    try {
      plan = new TrainingPlan(cfg, data.train.count);
    } catch (e) {
      throw new DomainError('bad-request', (e as Error).message);
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

  async action(id: string, action: JobAction): Promise<JobSummary> {
    const j = jobRow(this.store, id);
    const conflict = (why: string): never => {
      throw new DomainError('conflict', `cannot ${action} job ${id} (${j.state}): ${why}`);
    };
    switch (action) {
      case 'start':
        if (j.state !== 'created') conflict('only a created job can start');
        if (this.run) conflict(`job ${this.run.id} is active; pause does not free the grid, cancel it first`);
        this.store.updateJob(id, { state: 'running', started_at: Date.now() });
        try {
          await this.life.activate(jobRow(this.store, id), false);
        } catch (e) {
          // e.g. the job does not fit the data any more (`conflict`): it stays created
          this.store.updateJob(id, { state: 'created', started_at: null });
          throw e;
        }
        break;
      case 'pause':
        if (j.state !== 'running') conflict('only a running job can pause');
        this.setState(id, 'paused');
        break;
      case 'resume':
        if (j.state !== 'paused') conflict('only a paused job can resume');
        this.setState(id, 'running');
        this.leases.pump();
        break;
      case 'cancel':
        if (j.state === 'done' || j.state === 'cancelled' || j.state === 'failed') conflict('it has finished');
        if (this.run?.id === id) this.life.deactivate();
        this.store.updateJob(id, { state: 'cancelled', finished_at: Date.now() });
        this.emit({ type: 'job', jobId: id, state: 'cancelled' });
        this.leases.pump();
        break;
    }
    return this.summary(id);
  }

  private setState(id: string, state: JobState): void {
    this.store.updateJob(id, { state });
    this.emit({ type: 'job', jobId: id, state });
  }

  /** Resolves when pending evaluations (and the job's completion) are recorded. */
  idle(): Promise<void> {
    return this.evaluations.idle();
  }

  summary(id: string): JobSummary {
    return jobSummary(this.store, id, this.run?.id === id ? this.run : null, (cfg) => this.checks.figures(id, cfg));
  }

  jobs(): JobSummary[] {
    return this.store.jobs().map((j) => this.summary(j.id));
  }

  metrics(id: string, since = 0): JobMetrics {
    return jobMetrics(this.store, id, since);
  }

  /** The current weights of a job as safetensors: the active job's live weights, else its last checkpoint's. */
  weightsOf(id: string): Uint8Array {
    const j = jobRow(this.store, id);
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
    return publicStatus(this.store, this.run, this.workerRegistry.activeCount());
  }

  // ---------------------------------------------------------------- blobs

  /** A served blob; `gone` for an old version's weights, `not-found` for an unknown hash. */
  blob(hash: string): Blob {
    return this.blobs.get(hash);
  }

  /** Marks a blob as being sent; call the returned function when the response has ended (BlobStore.hold). */
  holdBlob(hash: string): () => void {
    return this.blobs.hold(hash);
  }

  /** Memory to read a result body of `bytes` into (so aggregation needs no copy), or null. */
  receiveSlot(bytes: number): ReceiveSlot | null {
    const slot = this.run?.aggregator.acquireSlot(bytes) ?? null;
    if (slot) this.perf.slotBodies++;
    return slot;
  }

  noteBytesOut(n: number): void {
    if (this.run) this.run.bytesOut += n;
  }

  // ---------------------------------------------------------------- workers

  /** `address`: the client's address, whose prefix is the worker's registration source for its reputation. */
  register(req: RegisterRequest, address?: string): RegisterResponse {
    const res = this.workerRegistry.register(req, { heartbeatMs: this.opts.heartbeatMs, maxResultBytes: this.maxResultBytes });
    this.verifier?.reputation.register(res.workerId, sourceOf(address), Date.now());
    return res;
  }

  /** The worker a token belongs to (`unauthorized`, `worker-left`). Marks it seen, and active again if it was lost. */
  authenticate(token: string | undefined): WorkerRef {
    return this.workerRegistry.authenticate(token);
  }

  heartbeat(ref: WorkerRef, req: HeartbeatRequest): HeartbeatResponse {
    this.workerRegistry.heartbeat(this.workerRegistry.of(ref), req);
    const run = this.run;
    if (!run) return { job: null };
    return { job: { id: run.id, state: this.store.job(run.id)!.state, iteration: run.iteration } };
  }

  leave(ref: WorkerRef): void {
    const w = this.workerRegistry.of(ref);
    this.workerRegistry.markLeft(w);
    this.p2p.leave(w);
    this.leases.releaseWorker(w, 'returned');
    this.trees.expireOrphans(w);
  }

  workers(): WorkerView[] {
    return this.workerRegistry.views();
  }

  /** The admin bans a worker: its token answers `banned`, its leases go back to the pool. */
  banWorker(workerId: string, reason = 'banned by the admin'): WorkerView {
    const w = this.workerRegistry.byIdOr404(workerId);
    this.checks.ban(w, reason);
    return this.workers().find((x) => x.id === w.id)!;
  }

  /** The admin lifts a ban: the worker starts its probation again (checked on every result). */
  liftBan(workerId: string): WorkerView {
    const w = this.workerRegistry.byIdOr404(workerId);
    this.checks.lift(w);
    return this.workers().find((x) => x.id === w.id)!;
  }

  // ---------------------------------------------------------------- leasing

  /**
   * A lease now (and up to maxTasks - 1 more of the same iteration), or after
   * a long-poll of up to waitMs, or the reason there is none.
   */
  lease(ref: WorkerRef, cached: readonly string[] | undefined, waitMs: number, maxTasks = 1): Promise<LeaseResponse> {
    return this.leases.lease(this.workerRegistry.of(ref), cached, waitMs, maxTasks);
  }

  /** Gives a lease back (the worker is stopping). */
  returnLease(ref: WorkerRef, leaseId: string): void {
    this.leases.returnLease(this.workerRegistry.of(ref), leaseId);
  }

  /** Expires overdue leases and leases of silent workers. */
  sweep(): void {
    const now = Date.now();
    this.leases.sweep(now);
    for (const w of this.workerRegistry.sweepSilent(now, this.opts.workerTimeoutMs, this.opts.workerRetentionMs)) {
      this.leases.releaseWorker(w, 'expired');
      this.trees.expireOrphans(w);
    }
    this.p2p.pump(); // tasks that came free go to tabs waiting for a role too
  }

  // ---------------------------------------------------------------- peer-to-peer trees

  /** A tab takes part in trees (or stops, with webrtc false); answers the ICE servers and the signalling path. */
  p2pJoin(ref: WorkerRef, req: JoinRequest): JoinResponse {
    return this.trees.join(this.workerRegistry.of(ref), req);
  }

  /** A role in a tree of the current iteration with the tab's leases, after a long-poll of up to waitMs, or why there is none. */
  p2pRound(ref: WorkerRef, cached: readonly string[] | undefined, waitMs: number): Promise<RoundResponse> {
    return this.trees.round(this.workerRegistry.of(ref), cached, waitMs);
  }

  /** A leaf's sketch report (core/protocol/sketch.ts, binary): kept for the check of the partial that covers it. */
  p2pReport(ref: WorkerRef, body: Uint8Array): void {
    this.trees.report(this.workerRegistry.of(ref), body);
  }

  /** Is this worker a peer-to-peer member (the signalling server lets members only take a peer id)? */
  p2pMember(ref: WorkerRef): boolean {
    return this.p2p.isMember(this.workerRegistry.of(ref));
  }

  // ---------------------------------------------------------------- results

  /**
   * The checks an upload's URL and headers allow, before a byte of its body
   * is read (results.ts); submitResult checks all of it again.
   */
  admitUpload(ref: WorkerRef, leaseId: string, treeId?: string): void {
    this.results.admit(this.workerRegistry.of(ref), leaseId, treeId);
  }

  /**
   * Validates a result completely (intake.ts), then (only then) records and
   * aggregates it (results.ts). A refusal throws DomainError and changes
   * nothing but the rejected / late counters and the expiry of overdue leases.
   */
  submitResult(ref: WorkerRef, leaseId: string, body: Uint8Array, treeId?: string): ResultAck {
    return this.results.submit(this.workerRegistry.of(ref), leaseId, body, treeId);
  }

  /** Stops timers, answers long-polls, closes the database. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.leases.close();
    this.p2p.close();
    await this.evaluations.close();
    await this.verifier?.dispose();
    this.store.close();
  }
}
