/**
 * A job's run in memory and its steps, as lifecycle.ts drives them: open
 * (data, partitions, weights from the checkpoint or the seed, the
 * aggregator), publish an iteration (weights blob, one task per partition),
 * apply the update when coverage is complete (metrics), close. Its
 * checkpoints are checkpointer.ts's, its evaluations evaluations.ts's.
 * The arithmetic is the in-process trainer's (coordinator/trainer.ts), so the
 * weights agree up to the order of float summation.
 */
import { existsSync } from 'node:fs';
import type { Dataset } from '../../core/dataset.ts';
import type { JobConfig } from '../../core/model/config.ts';
import { MomentumSgd } from '../../core/model/optimizer.ts';
import { initParams, phaseTensors, tensorShapes, type Params } from '../../core/model/params.ts';
import { phaseName, TrainingPlan } from '../../core/model/plan.ts';
import { encodePartition, PARTITION_TYPE, SAFETENSORS_TYPE, type DeltaRef, type IterationMetricsRow, type Partition } from '../../core/protocol/index.ts';
import { partitionDataset } from '../../datasets/partition.ts';
import { createAggregator, type Aggregator, type AggregatorKind, type SummerKind } from '../aggregate/index.ts';
import type { BlobStore } from './blobs.ts';
import { loadCheckpoint } from './checkpoint.ts';
import { dataFitIssues } from './data-fit.ts';
import { DomainError } from './errors.ts';
import { lossBoundPerExample } from './metric-bounds.ts';
import { JobMode, type Step } from './modes.ts';
import type { JobRow, Store } from './store.ts';

export interface TrainTestData {
  readonly train: Dataset;
  readonly test: Dataset;
}

/** One task of the current iteration. */
export interface TaskSlot {
  readonly id: string;
  readonly partition: number;
  /** checking: answered, held out of the aggregation until its recomputation's verdict (coordinator/trust/) */
  state: 'pending' | 'leased' | 'checking' | 'done';
  leaseId: string | null;
  workerId: string | null;
  attempts: number;
  /** examples the sample holds */
  readonly expected: number;
  /** workers whose result for this task failed its check: never leased it again */
  excluded?: Set<string>;
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
  /** the job's training mode: its steps (iterations or rounds), result decoding, update, weights broadcast */
  readonly mode: JobMode;
  /** the master weights (the optimizer's); with a training config workers compute on mode.published */
  readonly params: Params;
  readonly optimizer: MomentumSgd;
  readonly shapes: Map<string, number[]>;
  readonly partitions: PartitionBlob[];
  /** the partitions' examples, for recomputing a task */
  readonly data: readonly Partition[];
  readonly test: Dataset;
  iteration: number;
  it: Step | null;
  /** phase tensor shapes of the current iteration */
  gradShapes: Map<string, number[]>;
  /** the largest loss one example can report in the current iteration (metric-bounds.ts) */
  lossBoundPerExample: number;
  weights: { hash: string; bytes: number; version: number } | null;
  /** the version before `weights`: served one iteration longer for slow downloads of a stale lease */
  previousWeights: string | null;
  /** the delta blobs of the last DELTA_HISTORY versions, oldest first, the last ending at `weights` (a job with a training config) */
  deltas: DeltaRef[];
  /** published weights from the checkpoint, for the first publication after opening */
  resumedPublished: Params | undefined;
  readonly trainCount: number;
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
  const mode = new JobMode(cfg, plan);
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
  const partitions: PartitionBlob[] = [];
  const parts = partitionDataset(data.train, cfg.partitions);
  for (const part of parts) {
    const bytes = encodePartition(part);
    const hash = blobs.put(bytes, PARTITION_TYPE);
    partitions.push({ index: part.index, lo: part.lo, hi: part.hi, hash, bytes: bytes.length });
  }
  const aggregator = createAggregator(opts.aggregator, { fanIn: opts.fanIn, summer: opts.summer, rule: cfg.aggregation ?? 'sum' });
  let floats = 0;
  for (const sh of tensorShapes(cfg).values()) floats += Math.ceil(sh.reduce((a, b) => a * b, 1) / 4) * 4;
  aggregator.reserve(floats, cfg.partitions, opts.maxConcurrentUploads, resultLimit(cfg));
  return {
    id: j.id,
    cfg,
    plan,
    mode,
    params,
    optimizer,
    shapes: tensorShapes(cfg),
    partitions,
    data: parts,
    test: data.test,
    iteration,
    it: null,
    gradShapes: new Map(),
    lossBoundPerExample: Infinity,
    weights: null,
    previousWeights: null,
    deltas: [],
    resumedPublished,
    trainCount: data.train.count,
    slots: [],
    aggregator,
    startedAt: Date.now(),
    bytesIn: 0,
    bytesOut: 0,
  };
}

/** Versions of weights deltas served (a job with a training config): a worker that sat out a few versions still follows by deltas. */
export const DELTA_HISTORY = 8;

/**
 * Publishes the weights of version t = run.iteration: the whole blob, and
 * with a training config the delta from t - 1 too (JobMode.publish),
 * `prevStep` being the step whose update led here (null: the first
 * publication since the run was opened, which starts a new delta chain).
 */
export function publishWeights(run: ActiveRun, blobs: BlobStore, perf: Perf, prevStep: Step | null): void {
  const tPublish = performance.now();
  const t = run.iteration;
  const prev = run.weights;
  const spare = blobs.takeSpare();
  const pub = run.mode.publish(run.id, run.shapes, run.params, t, prevStep, spare, run.resumedPublished);
  run.resumedPublished = undefined;
  const bytes = pub.blob;
  if (spare && bytes.buffer === spare.buffer) perf.weightsReused++;
  const hash = blobs.put(bytes, SAFETENSORS_TYPE, true);
  run.weights = { hash, bytes: bytes.length, version: t };
  // The previous version stays one iteration longer for slow downloads of a stale lease; older ones go.
  if (prev && prev.hash !== hash) {
    const older = run.previousWeights;
    if (older && older !== hash) blobs.retire(older);
    run.previousWeights = prev.hash;
  }
  if (pub.delta && prev && prevStep) {
    const dh = blobs.put(pub.delta, SAFETENSORS_TYPE);
    run.deltas.push({ hash: dh, bytes: pub.delta.length, from: prev.version, fromHash: prev.hash });
  } else {
    // a new chain: older deltas lead nowhere
    for (const d of run.deltas) blobs.retire(d.hash);
    run.deltas = [];
  }
  // a worker up to DELTA_HISTORY versions behind follows by deltas; one further behind downloads whole weights
  while (run.deltas.length > DELTA_HISTORY) blobs.retire(run.deltas.shift()!.hash);
  perf.publishSeconds += (performance.now() - tPublish) / 1000;
}

/**
 * Records the tasks of step t = run.iteration, publishing its weights first
 * unless completeIteration already did.
 */
export function publishIteration(run: ActiveRun, blobs: BlobStore, store: Store, perf: Perf): Step {
  if (run.weights?.version !== run.iteration) publishWeights(run, blobs, perf, null);
  const tPublish = performance.now();
  const t = run.iteration;
  const it = run.mode.at(t);
  run.it = it;
  run.gradShapes = new Map(phaseTensors(run.cfg, it.phase).map((n) => [n, run.shapes.get(n)!]));
  // on the weights the tasks compute on; a local-SGD task's fine-tuning loss comes from H steps of weights
  // that move away from them, so the bound (which depends on out.W) holds only in pre-training (V per example)
  run.lossBoundPerExample = run.mode.local && it.phase.kind === 'finetune' ? Infinity : lossBoundPerExample(run.cfg, it.phase, run.mode.published ?? run.params);
  run.slots = run.partitions.map((p) => ({
    id: `${run.id}:${t}:${p.index}`,
    partition: p.index,
    state: 'pending' as const,
    leaseId: null,
    workerId: null,
    attempts: 0,
    expected: run.mode.expected(it, p.lo, p.hi),
    excluded: new Set<string>(),
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
  for (const d of run.deltas) blobs.retire(d.hash);
}

/**
 * The iteration's coverage is complete: sums the total, applies the update,
 * records the metrics and moves run.iteration on. Returns the metrics row
 * and the plan of the iteration that ended.
 */
export function applyUpdate(run: ActiveRun, store: Store, perf: Perf): { row: IterationMetricsRow; it: Step; done: boolean } {
  const it = run.it!;
  const tFinish = performance.now();
  const summedBefore = run.aggregator.bytesSummed;
  const total = run.aggregator.finish();
  perf.aggregateSeconds += (performance.now() - tFinish) / 1000;
  perf.aggregateBytes += run.aggregator.bytesSummed - summedBefore;
  const tUpdate = performance.now();
  run.mode.update(run.params, run.optimizer, it, total.grads, total.count, total.covers.size);
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
  return { row, it, done: run.iteration >= run.mode.total };
}
