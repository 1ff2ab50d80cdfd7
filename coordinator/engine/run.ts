/**
 * A job's lifecycle in memory, as the engine's coordinator drives it: open
 * (data, partitions, weights from the checkpoint or the seed, the
 * aggregator), publish an iteration (weights blob, one task per partition),
 * apply the update when coverage is complete (metrics), checkpoint, evaluate.
 * The arithmetic is the in-process trainer's (coordinator/trainer.ts), so the
 * weights agree up to the order of float summation.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ComputeBackend } from '../../core/backend.ts';
import type { Dataset } from '../../core/dataset.ts';
import type { JobConfig } from '../../core/model/config.ts';
import { MomentumSgd } from '../../core/model/optimizer.ts';
import { cloneParams, initParams, phaseTensors, tensorShapes, type Params } from '../../core/model/params.ts';
import { phaseName, TrainingPlan, type IterationPlan } from '../../core/model/plan.ts';
import { encodePartition, encodeWeights, PARTITION_TYPE, SAFETENSORS_TYPE, type IterationMetricsRow, type JobEvent } from '../../core/protocol/index.ts';
import { sampleRange } from '../../core/rng.ts';
import { partitionDataset } from '../../datasets/partition.ts';
import { createAggregator, type Aggregator, type AggregatorKind, type SummerKind } from '../aggregate/index.ts';
import { evaluate } from '../trainer.ts';
import type { BlobStore } from './blobs.ts';
import { checkpointName, loadCheckpoint, pruneCheckpoints, saveCheckpoint } from './checkpoint.ts';
import { dataFitIssues } from './data-fit.ts';
import { DomainError } from './errors.ts';
import { crashPoint } from './test-crash.ts';
import { lossBoundPerExample } from './metric-bounds.ts';
import type { JobRow, Store } from './store.ts';

export interface TrainTestData {
  readonly train: Dataset;
  readonly test: Dataset;
}

/** One task of the current iteration. */
export interface TaskSlot {
  readonly id: string;
  readonly partition: number;
  state: 'pending' | 'leased' | 'done';
  leaseId: string | null;
  workerId: string | null;
  attempts: number;
  /** examples the sample holds */
  readonly expected: number;
}

export interface PartitionBlob {
  readonly index: number;
  readonly lo: number;
  readonly hi: number;
  readonly hash: string;
  readonly bytes: number;
}

/** The running (or paused) job in memory. */
export interface ActiveRun {
  readonly id: string;
  readonly cfg: JobConfig;
  readonly plan: TrainingPlan;
  readonly params: Params;
  readonly optimizer: MomentumSgd;
  readonly shapes: Map<string, number[]>;
  readonly partitions: PartitionBlob[];
  readonly test: Dataset;
  iteration: number;
  it: IterationPlan | null;
  /** phase tensor shapes of the current iteration */
  gradShapes: Map<string, number[]>;
  /** the largest loss one example can report in the current iteration (metric-bounds.ts) */
  lossBoundPerExample: number;
  weights: { hash: string; bytes: number; version: number } | null;
  /** the version before `weights`: served one iteration longer for slow downloads of a stale lease */
  previousWeights: string | null;
  slots: TaskSlot[];
  readonly aggregator: Aggregator;
  startedAt: number;
  bytesIn: number;
  bytesOut: number;
}

/** Where the coordinator's time goes (benchmarks): seconds and bytes since start. */
export interface Perf {
  results: number;
  validateSeconds: number;
  aggregateSeconds: number;
  aggregateBytes: number;
  updateSeconds: number;
  slotBodies: number;
  publishSeconds: number;
  iterations: number;
  checkpointFailures: number;
  weightsReused: number;
}

export interface RunOptions {
  readonly loadData: (cfg: JobConfig) => Promise<TrainTestData>;
  readonly aggregator: AggregatorKind;
  readonly fanIn: number;
  readonly summer: SummerKind;
  readonly maxConcurrentUploads: number;
}

const RESULT_SLACK_BYTES = 64 * 1024;

/** Largest result body for a job: the model's full gradient plus header slack. */
export function resultLimit(cfg: JobConfig | null): number {
  let n = 0;
  if (cfg) for (const s of tensorShapes(cfg).values()) n += s.reduce((a, b) => a * b, 1);
  return n * 4 + RESULT_SLACK_BYTES;
}

/**
 * Loads a job into memory: data, partitions (served from `blobs`), weights
 * and velocities from its checkpoint (or the seed), an aggregator sized for
 * it. The iteration is the checkpoint's; nothing is published yet.
 */
export async function openRun(j: JobRow, cfg: JobConfig, blobs: BlobStore, opts: RunOptions): Promise<ActiveRun> {
  const data = await opts.loadData(cfg);
  const misfit = dataFitIssues(cfg, data);
  if (misfit.length) throw new DomainError('conflict', `job ${j.id} does not fit the data: ${misfit.join('; ')}`);
  const plan = new TrainingPlan(cfg, data.train.count);
  const optimizer = new MomentumSgd();
  let params: Params;
  let iteration = 0;
  if (j.checkpoint_path && existsSync(j.checkpoint_path)) {
    const ck = loadCheckpoint(j.checkpoint_path, cfg);
    params = ck.params;
    for (const [k, v] of ck.velocity) optimizer.velocity.set(k, v);
    iteration = ck.iteration;
  } else {
    params = initParams(cfg);
  }
  const partitions: PartitionBlob[] = [];
  for (const part of partitionDataset(data.train, cfg.partitions)) {
    const bytes = encodePartition(part);
    const hash = blobs.put(bytes, PARTITION_TYPE);
    partitions.push({ index: part.index, lo: part.lo, hi: part.hi, hash, bytes: bytes.length });
  }
  const aggregator = createAggregator(opts.aggregator, { fanIn: opts.fanIn, summer: opts.summer });
  let floats = 0;
  for (const sh of tensorShapes(cfg).values()) floats += Math.ceil(sh.reduce((a, b) => a * b, 1) / 4) * 4;
  aggregator.reserve(floats, cfg.partitions, opts.maxConcurrentUploads, resultLimit(cfg));
  return {
    id: j.id,
    cfg,
    plan,
    params,
    optimizer,
    shapes: tensorShapes(cfg),
    partitions,
    test: data.test,
    iteration,
    it: null,
    gradShapes: new Map(),
    lossBoundPerExample: Infinity,
    weights: null,
    previousWeights: null,
    slots: [],
    aggregator,
    startedAt: Date.now(),
    bytesIn: 0,
    bytesOut: 0,
  };
}

/** Publishes the weights of version t (= run.iteration) and records the iteration's tasks. */
export function publishIteration(run: ActiveRun, blobs: BlobStore, store: Store, perf: Perf): IterationPlan {
  const tPublish = performance.now();
  const t = run.iteration;
  const it = run.plan.at(t);
  run.it = it;
  const prev = run.weights;
  const spare = blobs.takeSpare();
  const bytes = encodeWeights(run.cfg, run.params, run.shapes, t, run.id, spare);
  if (spare && bytes.buffer === spare.buffer) perf.weightsReused++;
  const hash = blobs.put(bytes, SAFETENSORS_TYPE, true);
  run.weights = { hash, bytes: bytes.length, version: t };
  // The previous version stays one iteration longer for slow downloads of a stale lease; older ones go.
  if (prev && prev.hash !== hash) {
    const older = run.previousWeights;
    if (older && older !== hash) blobs.retire(older);
    run.previousWeights = prev.hash;
  }
  run.gradShapes = new Map(phaseTensors(run.cfg, it.phase).map((n) => [n, run.shapes.get(n)!]));
  run.lossBoundPerExample = lossBoundPerExample(run.cfg, it.phase, run.params);
  run.slots = run.partitions.map((p) => ({
    id: `${run.id}:${t}:${p.index}`,
    partition: p.index,
    state: 'pending' as const,
    leaseId: null,
    workerId: null,
    attempts: 0,
    expected: sampleRange(run.cfg.seed, t, p.lo, p.hi, it.fraction).length,
  }));
  store.tx(() => {
    for (const s of run.slots) {
      store.insertTask({
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
  perf.publishSeconds += (performance.now() - tPublish) / 1000;
  perf.iterations++;
  return it;
}

/** Stops serving a run's blobs (it is no longer active). */
export function closeRun(run: ActiveRun, blobs: BlobStore): void {
  for (const p of run.partitions) blobs.delete(p.hash);
  if (run.weights) blobs.retire(run.weights.hash);
  if (run.previousWeights) blobs.retire(run.previousWeights);
}

/**
 * The iteration's coverage is complete: sums the total, applies the update,
 * records the metrics and moves run.iteration on. Returns the metrics row
 * and the plan of the iteration that ended.
 */
export function applyUpdate(run: ActiveRun, store: Store, perf: Perf): { row: IterationMetricsRow; it: IterationPlan; done: boolean } {
  const it = run.it!;
  const tFinish = performance.now();
  const summedBefore = run.aggregator.bytesSummed;
  const total = run.aggregator.finish();
  perf.aggregateSeconds += (performance.now() - tFinish) / 1000;
  perf.aggregateBytes += run.aggregator.bytesSummed - summedBefore;
  const tUpdate = performance.now();
  if (total.count > 0) run.optimizer.step(run.params, total.grads, total.count, it);
  if (it.phaseEnd) run.optimizer.reset();
  perf.updateSeconds += (performance.now() - tUpdate) / 1000;
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
  store.tx(() => {
    store.insertIteration({
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
    store.updateJob(run.id, { iteration: run.iteration });
  });
  return { row, it, done: run.iteration >= run.plan.totalIterations };
}

/** Checkpoint files of the jobs: writes params + velocities atomically and keeps the newest few. */
export class Checkpointer {
  constructor(
    private readonly dataDir: string,
    private readonly keep: number,
    private readonly store: Store,
    private readonly emit: (e: JobEvent) => void,
    private readonly log: (msg: string) => void,
    private readonly perf: Perf,
    /** phase ends get evaluated: their checkpoints stay until the evaluation is recorded (a restart evaluates from them) */
    private readonly evaluates: boolean,
  ) {}

  /** A job's checkpoint folder. */
  dirOf(jobId: string): string {
    return join(this.dataDir, 'jobs', jobId);
  }

  /**
   * A checkpoint that cannot be written (disk full, folder gone) must not stop
   * the job: the previous checkpoint stays valid (writes are atomic), training
   * goes on in memory, and the next checkpoint tries again. Counted in
   * `perf.checkpointFailures` and logged.
   */
  tryWrite(run: ActiveRun): void {
    try {
      this.write(run);
    } catch (e) {
      this.perf.checkpointFailures++;
      const last = this.store.job(run.id)?.checkpoint_iteration ?? 0;
      this.log(`checkpoint at iteration ${run.iteration} failed (${(e as Error).message}); training goes on, the last good checkpoint is at iteration ${last}`);
    }
  }

  /** Writes params + velocities for the next iteration atomically, then points the job row at it. */
  private write(run: ActiveRun): void {
    const dir = this.dirOf(run.id);
    mkdirSync(dir, { recursive: true });
    const path = join(dir, checkpointName(run.iteration));
    saveCheckpoint(path, { iteration: run.iteration, params: run.params, velocity: run.optimizer.velocity, config: run.cfg });
    this.store.updateJob(run.id, { checkpoint_iteration: run.iteration, checkpoint_path: path });
    this.emit({ type: 'checkpoint', jobId: run.id, iteration: run.iteration });
    pruneCheckpoints(dir, this.keep, new Set(unevaluatedPhaseEnds(run, this.store, this.evaluates).map((e) => join(dir, checkpointName(e.iteration + 1)))));
  }
}

/**
 * The phase ends (the last iteration of a phase) before run.iteration whose
 * evaluation is not recorded: a crash between the update and the evaluation
 * (which runs off the request path) lost them. Their weights are the
 * checkpoint written right after that update (checkpointName(iteration + 1)).
 */
export function unevaluatedPhaseEnds(run: ActiveRun, store: Store, evaluates: boolean): { iteration: number; phase: string }[] {
  if (!evaluates || run.test.count === 0) return [];
  const recorded = new Set(store.evaluations(run.id).map((e) => e.iteration));
  return run.plan.phases
    .filter((p) => p.iterations > 0)
    .map((p) => ({ iteration: p.start + p.iterations - 1, phase: phaseName(p.phase) }))
    .filter((e) => e.iteration >= 0 && e.iteration + 1 <= run.iteration && !recorded.has(e.iteration));
}

/** Test-set evaluations, one after another off the request path (they yield between batches). */
export class Evaluator {
  private chain: Promise<void> = Promise.resolve();
  private backend: Promise<ComputeBackend> | null = null;
  private closed = false;

  constructor(
    private readonly make: (() => Promise<ComputeBackend>) | undefined,
    private readonly store: Store,
    private readonly emit: (e: JobEvent) => void,
    private readonly log: (msg: string) => void,
  ) {}

  /** Evaluates a snapshot of the run's weights after `iteration` (or `params`, the weights of then, on a restart). */
  schedule(run: ActiveRun, iteration: number, phase: string, weights?: Params): void {
    const make = this.make;
    if (!make || run.test.count === 0) return;
    const params = weights ?? cloneParams(run.params);
    this.chain = this.chain.then(async () => {
      try {
        this.backend ??= make();
        const backend = await this.backend;
        const ev = await evaluate(backend, run.cfg, params, run.test, 250);
        if (this.closed) return;
        crashPoint('before-evaluation', iteration);
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

  /** Runs fn once the evaluations scheduled so far are recorded. */
  then(fn: () => void): void {
    this.chain = this.chain.then(fn);
  }

  /** Resolves when the evaluations (and what was chained after them) are done. */
  idle(): Promise<void> {
    return this.chain;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.chain.catch(() => undefined);
    if (this.backend) (await this.backend).dispose();
  }
}
