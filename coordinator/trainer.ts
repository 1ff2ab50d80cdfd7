/**
 * The in-process trainer: the whole job on one machine, the reference the
 * distributed system must reproduce. Each iteration runs one task per
 * partition exactly as a worker would (computeTask on the examples that
 * sampleRange picks), sums the results in partition order, and applies the
 * momentum-SGD update. Same seed, same backend: same weights, bit for bit.
 */
import type { ComputeBackend } from '../core/backend.ts';
import type { JobConfig } from '../core/model/config.ts';
import { MomentumSgd } from '../core/model/optimizer.ts';
import { initParams, mlpLayers, type Params } from '../core/model/params.ts';
import { TrainingPlan, type IterationPlan } from '../core/model/plan.ts';
import { sampleRange } from '../core/rng.ts';
import { addResults, computeTask, toUnit, type ExampleBatch, type TaskResult } from '../core/task.ts';
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
  readonly params: Params;
  readonly optimizer = new MomentumSgd();
  /** the next iteration to run */
  iteration = 0;
  private readonly backend: ComputeBackend;
  private readonly cfg: JobConfig;
  private readonly train: LabeledImages;

  constructor(opts: TrainerOptions) {
    this.backend = opts.backend;
    this.cfg = opts.config;
    this.train = opts.train;
    this.plan = new TrainingPlan(opts.config, opts.train.count);
    if (opts.resume) {
      if (JSON.stringify(opts.resume.config) !== JSON.stringify(opts.config)) {
        throw new Error('the checkpoint was written for a different job config');
      }
      this.params = opts.resume.params;
      for (const [k, v] of opts.resume.velocity) this.optimizer.velocity.set(k, v);
      this.iteration = opts.resume.iteration;
    } else {
      this.params = initParams(opts.config);
    }
  }

  get done(): boolean {
    return this.iteration >= this.plan.totalIterations;
  }

  /** Runs one iteration: every partition's task, the sum, the update. */
  async step(): Promise<IterationMetrics> {
    const t0 = performance.now();
    const it = this.plan.at(this.iteration);
    let sum: TaskResult | undefined;
    for (const { lo, hi } of this.plan.partitions()) {
      const ids = sampleRange(this.cfg.seed, it.iteration, lo, hi, it.fraction);
      const r = await computeTask(
        this.backend,
        this.cfg,
        this.params,
        { phase: it.phase, iteration: it.iteration, seed: this.cfg.seed, weightsVersion: it.iteration },
        gatherBatch(this.train, ids),
      );
      sum = sum ? addResults(sum, r) : r;
    }
    if (sum && sum.count > 0) this.optimizer.step(this.params, sum.grads, sum.count, it);
    if (it.phaseEnd) this.optimizer.reset();
    this.iteration++;
    const count = sum?.count ?? 0;
    return {
      plan: it,
      loss: count ? sum!.loss / count : 0,
      accuracy: count ? sum!.correct / count : 0,
      count,
      seconds: (performance.now() - t0) / 1000,
    };
  }

  checkpoint(): Checkpoint {
    return { iteration: this.iteration, params: this.params, velocity: this.optimizer.velocity, config: this.cfg };
  }
}
