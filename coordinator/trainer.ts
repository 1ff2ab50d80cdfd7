/**
 * The in-process trainer: the whole job on one machine, the reference the
 * distributed system must reproduce. Each iteration runs one task per
 * partition exactly as a worker would (computeTask on the examples that
 * sampleRange picks), sums the results in partition order, and applies the
 * momentum-SGD update. Same seed, same backend: same weights, bit for bit.
 *
 * A job with a `training` config (core/model/training.ts) runs as the
 * coordinator runs it: tasks compute on the published weights of the
 * delta-broadcast chain (weights-delta.ts), results travel in the up encoding
 * (encoded and decoded here too, with the same rounding seeds), and in
 * local-SGD mode each step is a round: every partition's H local steps from
 * the round's weights, the deltas summed in partition order, the outer
 * optimizer's update. Without one, the synchronous path below is unchanged.
 */
import { createHash } from 'node:crypto';
import type { ComputeBackend } from '../core/backend.ts';
import type { JobConfig } from '../core/model/config.ts';
import { MomentumSgd } from '../core/model/optimizer.ts';
import { OuterOptimizer } from '../core/model/outer.ts';
import { initParams, mlpLayers, phaseTensors, tensorShapes, type Params } from '../core/model/params.ts';
import { TrainingPlan, type IterationPlan } from '../core/model/plan.ts';
import { LocalSgdPlan, trainingOf, type RoundPlan, type TrainingConfig } from '../core/model/training.ts';
import { computeLocalTask } from '../core/local-sgd.ts';
import { roundTrip, taskSeed } from '../core/protocol/encoded-tensors.ts';
import { WeightsChain, type PublishedVersion } from '../core/protocol/weights-delta.ts';
import { sampleRange } from '../core/rng.ts';
import { parseSafetensors } from '../core/safetensors.ts';
import { addGrads, addResults, computeTask, toUnit, type ExampleBatch, type TaskResult } from '../core/task.ts';
import type { Checkpoint } from './engine/checkpoint.ts';

/** Images and labels, N x dim uint8 pixels. */
export interface LabeledImages {
  readonly images: Uint8Array;
  readonly labels: Uint8Array;
  readonly count: number;
  readonly dim: number;
}

export interface IterationMetrics {
  readonly plan: IterationPlan;
  /** loss sum / count: reconstruction error per example (pre-training) or cross-entropy (fine-tuning) */
  readonly loss: number;
  /** training accuracy on the iteration's examples (fine-tuning only) */
  readonly accuracy: number;
  readonly count: number;
  readonly seconds: number;
  /** local SGD: the round this step ran (plan is then its last local step's, phaseEnd the round's) */
  readonly round?: RoundPlan;
}

export interface Evaluation {
  readonly error: number;
  readonly loss: number;
  /** confusion[label * K + predicted] */
  readonly confusion: Uint32Array;
  readonly count: number;
}

/** Gathers the examples with the given global ids into one batch. */
export function gatherBatch(data: LabeledImages, ids: Uint32Array): ExampleBatch {
  const D = data.dim;
  const pixels = new Uint8Array(ids.length * D);
  const labels = new Uint8Array(ids.length);
  for (let i = 0; i < ids.length; i++) {
    const e = ids[i]!;
    if (e >= data.count) throw new RangeError(`example ${e} is past the data set's ${data.count}`);
    pixels.set(data.images.subarray(e * D, (e + 1) * D), i * D);
    labels[i] = data.labels[e]!;
  }
  return { pixels, labels, ids, dim: D };
}

/** Test error, mean cross-entropy and the confusion matrix of the MLP; yields to the event loop between batches. */
export async function evaluate(
  backend: ComputeBackend,
  cfg: JobConfig,
  params: Params,
  data: LabeledImages,
  batchSize = 1000,
): Promise<Evaluation> {
  const K = cfg.layers[cfg.layers.length - 1]!;
  const layers = mlpLayers(cfg, params);
  const confusion = new Uint32Array(K * K);
  let wrong = 0;
  let loss = 0;
  for (let lo = 0; lo < data.count; lo += batchSize) {
    const n = Math.min(batchSize, data.count - lo);
    const x = toUnit(data.images.subarray(lo * data.dim, (lo + n) * data.dim));
    const p = await backend.predict(layers, x, n);
    for (let i = 0; i < n; i++) {
      let best = 0;
      for (let k = 1; k < K; k++) if (p[i * K + k]! > p[i * K + best]!) best = k;
      const label = data.labels[lo + i]!;
      confusion[label * K + best]!++;
      if (best !== label) wrong++;
      loss -= Math.log(Math.max(p[i * K + label]!, 1e-30));
    }
    // Let a server's event loop answer requests between batches.
    await new Promise<void>((r) => setTimeout(r, 0));
  }
  return { error: wrong / data.count, loss: loss / data.count, confusion, count: data.count };
}

export interface TrainerOptions {
  readonly backend: ComputeBackend;
  readonly config: JobConfig;
  readonly train: LabeledImages;
  /** resume from this checkpoint instead of the seed's initial weights */
  readonly resume?: Checkpoint;
}

export class Trainer {
  readonly plan: TrainingPlan;
  /** the master weights (what the optimizers update) */
  readonly params: Params;
  readonly optimizer = new MomentumSgd();
  /** the next iteration to run (a round, in local-SGD mode) */
  iteration = 0;
  /**
   * Tensor bytes a grid would move for the steps run so far, with one worker
   * per task: `up` the results, `down` the weights each task needs (whole
   * weights in the original sync mode; with a training config the delta from
   * the previous version, whole weights for the first). Headers not counted.
   */
  readonly traffic = { up: 0, down: 0, examples: 0 };
  private lastDownBytes = -1;
  /** the job's training config, or null: synchronous fp32, the original path */
  readonly training: TrainingConfig | null;
  /** local SGD's rounds, or null in sync mode */
  readonly local: LocalSgdPlan | null;
  readonly outer: OuterOptimizer | null;
  /** the delta broadcast's published weights (with a training config) */
  private chain: WeightsChain | null = null;
  private readonly resumePublished: Params | undefined;
  private readonly backend: ComputeBackend;
  private readonly cfg: JobConfig;
  private readonly train: LabeledImages;
  private readonly shapes: Map<string, number[]>;

  constructor(opts: TrainerOptions) {
    this.backend = opts.backend;
    this.cfg = opts.config;
    this.train = opts.train;
    this.plan = new TrainingPlan(opts.config, opts.train.count);
    this.shapes = tensorShapes(opts.config);
    this.training = opts.config.training ?? null;
    const tr = trainingOf(opts.config);
    this.local = tr.mode === 'local-sgd' ? new LocalSgdPlan(this.plan, tr.localSteps) : null;
    this.outer = this.local ? new OuterOptimizer(tr.outer) : null;
    if (opts.resume) {
      if (JSON.stringify(opts.resume.config) !== JSON.stringify(opts.config)) {
        throw new Error('the checkpoint was written for a different job config');
      }
      this.params = opts.resume.params;
      const vel = this.outer ? this.outer.momentum : this.optimizer.velocity;
      for (const [k, v] of opts.resume.velocity) vel.set(k, v);
      this.iteration = opts.resume.iteration;
      this.resumePublished = opts.resume.published;
    } else {
      this.params = initParams(opts.config);
    }
  }

  /** Iterations (rounds, in local-SGD mode) of the whole job. */
  get total(): number {
    return this.local ? this.local.totalRounds : this.plan.totalIterations;
  }

  get done(): boolean {
    return this.iteration >= this.total;
  }

  /** The weights the tasks of the next step compute on: the published ones (with a training config) or the master weights. */
  async published(): Promise<Params> {
    if (!this.training) return this.params;
    if (!this.chain) {
      const tr = this.training;
      this.chain = WeightsChain.start(this.cfg, this.shapes, 'trainer', tr.down, tr.blockSize, sha256, this.params, this.iteration, this.resumePublished).chain;
    }
    return this.chain.published;
  }

  /** Runs one iteration (every partition's task, the sum, the update), or in local-SGD mode one round. */
  async step(): Promise<IterationMetrics> {
    if (!this.training) return this.syncStep();
    return this.local ? this.localRound(this.local) : this.syncStep();
  }

  private async syncStep(): Promise<IterationMetrics> {
    const t0 = performance.now();
    const it = this.plan.at(this.iteration);
    const tr = this.training;
    const weights = await this.published();
    let sum: TaskResult | undefined;
    for (const [p, { lo, hi }] of this.plan.partitions().entries()) {
      const ids = sampleRange(this.cfg.seed, it.iteration, lo, hi, it.fraction);
      let r = await computeTask(
        this.backend,
        this.cfg,
        weights,
        { phase: it.phase, iteration: it.iteration, seed: this.cfg.seed, weightsVersion: it.iteration },
        gatherBatch(this.train, ids),
      );
      if (tr) {
        const sent = roundTrip(r.grads, this.shapes, tr.up, tr.blockSize, { seed: taskSeed(this.cfg.seed, p), stream: it.iteration });
        r = { ...r, grads: sent.values };
        this.traffic.up += sent.bytes;
      } else {
        for (const g of r.grads.values()) this.traffic.up += 4 * g.length;
      }
      this.traffic.down += this.downBytes();
      sum = sum ? addResults(sum, r) : r;
    }
    if (sum && sum.count > 0) this.optimizer.step(this.params, sum.grads, sum.count, it);
    if (it.phaseEnd) this.optimizer.reset();
    this.iteration++;
    if (this.chain) this.lastDownBytes = deltaBytes(this.chain.next(this.params, phaseTensors(this.cfg, it.phase), this.iteration, it.phaseEnd));
    const count = sum?.count ?? 0;
    this.traffic.examples += count;
    return {
      plan: it,
      loss: count ? sum!.loss / count : 0,
      accuracy: count ? sum!.correct / count : 0,
      count,
      seconds: (performance.now() - t0) / 1000,
    };
  }

  private async localRound(lsp: LocalSgdPlan): Promise<IterationMetrics> {
    const t0 = performance.now();
    const tr = this.training!;
    const rp = lsp.at(this.iteration);
    const weights = await this.published();
    let sum: Map<string, Float32Array> | undefined;
    let loss = 0;
    let correct = 0;
    let count = 0;
    const parts = this.plan.partitions();
    for (const [p, { lo, hi }] of parts.entries()) {
      const r = await computeLocalTask(this.backend, this.cfg, lsp, weights, { round: rp.round, lo, hi, weightsVersion: rp.round }, (ids) => gatherBatch(this.train, ids));
      const sent = roundTrip(r.delta, this.shapes, tr.up, tr.blockSize, { seed: taskSeed(this.cfg.seed, p), stream: rp.round });
      const delta = sent.values;
      this.traffic.up += sent.bytes;
      this.traffic.down += this.downBytes();
      if (!sum) sum = delta;
      else addGrads(sum, delta);
      loss += r.loss;
      correct += r.correct;
      count += r.count;
    }
    this.outer!.step(this.params, sum!, parts.length);
    if (rp.phaseEnd) this.outer!.reset();
    this.iteration++;
    this.lastDownBytes = deltaBytes(this.chain!.next(this.params, phaseTensors(this.cfg, rp.phase), this.iteration, rp.phaseEnd));
    this.traffic.examples += count;
    const last = lsp.plan.at(lsp.iterationOf(rp.phaseIndex, rp.firstStep + rp.steps - 1));
    return {
      plan: { ...last, phaseEnd: rp.phaseEnd },
      round: rp,
      loss: count ? loss / count : 0,
      accuracy: count ? correct / count : 0,
      count,
      seconds: (performance.now() - t0) / 1000,
    };
  }

  /** Bytes one task downloads to hold the current version. */
  private downBytes(): number {
    if (this.lastDownBytes < 0) {
      // nothing published before this run's first step: whole weights
      this.lastDownBytes = 0;
      for (const t of this.params.values()) this.lastDownBytes += 4 * t.length;
    }
    return this.lastDownBytes;
  }

  checkpoint(): Checkpoint {
    const velocity = this.outer ? this.outer.momentum : this.optimizer.velocity;
    return { iteration: this.iteration, params: this.params, velocity, config: this.cfg, ...(this.chain ? { published: this.chain.published } : {}) };
  }
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Tensor bytes of a published version's delta (without its header). */
function deltaBytes(v: PublishedVersion): number {
  const { spans } = parseSafetensors(v.delta!);
  return spans.reduce((n, s) => n + s.end - s.begin, 0);
}

