/**
 * How a job trains: the mode (synchronous gradients, or DiLoCo-style local
 * SGD rounds), the outer optimizer of local SGD, and the encodings of the
 * tensors that cross the wire (up: results; down: weights). Kept apart from
 * config.ts so the job config's schema can take it as one sub-object; a job
 * without `training` trains in sync mode with float32 both ways, exactly as
 * before this module existed.
 *
 * Local SGD (arXiv 2311.08105): a round is one task per partition; a task
 * starts from the round's broadcast weights W_r, runs H local momentum-SGD
 * steps on its own partition (velocity zero at the round's start, so the task
 * is a pure function of (weights version, partition, seed)), each step on a
 * full batch sampled from the partition (fraction batchSize / partition size),
 * and uploads delta_p = W_local - W_r. The coordinator averages the deltas,
 * mean = (1/P) sum_p delta_p, and applies the outer optimizer:
 *   plain:    W += eta * mean
 *   nesterov: u = mu * u + mean;  W += eta * (mean + mu * u)
 * (PyTorch's Nesterov SGD on the outer gradient -mean, as in DiLoCo).
 *
 * Equal examples: a phase of I plan iterations sees I * batchSize examples in
 * sync mode; in local SGD each partition takes S = ceil(I / P) local steps of
 * batchSize examples (P times fewer sequential steps, the same examples).
 * Local step j of partition p in the phase uses the plan's hyper-parameters
 * (learning rate, momentum, weight cost) and sampling seed of plan iteration
 * phase.start + j * P, so its epoch is where that many examples have passed.
 */
import * as v from 'valibot';
import { intIn, realIn, strictRecord } from '../schemas.ts';
import type { Phase, TrainingPlan } from './plan.ts';

export type TrainingMode = (typeof TRAINING_MODES)[number];
/** How a tensor travels: float32, float16 (round to nearest even), int8 with a float32 scale per block (stochastic rounding). */
export type TensorEncoding = (typeof TENSOR_ENCODINGS)[number];

export const TRAINING_MODES = ['sync', 'local-sgd'] as const;
export const TENSOR_ENCODINGS = ['f32', 'f16', 'int8'] as const;

const oneOf = <T extends string>(options: readonly T[]) =>
  v.picklist(options, (i) => `expected one of ${options.map((o) => JSON.stringify(o)).join(', ')}, got ${i.received}`);

export const OuterConfigSchema = v.pipe(
  strictRecord({
    kind: oneOf(['plain', 'nesterov'] as const),
    /** eta: 1 with `plain` is federated averaging */
    learningRate: realIn(0.001, 10),
    /** mu: Nesterov momentum (ignored by `plain`) */
    momentum: realIn(0, 0.999),
  }),
  v.readonly(),
);

/** A job's `training` field; omitted fields come from TRAINING_DEFAULTS (parseJobConfig lays the input over them). */
export const TrainingConfigSchema = v.pipe(
  strictRecord({
    mode: oneOf(TRAINING_MODES),
    /** H: local steps per task (local-sgd) */
    localSteps: intIn(1, 100_000),
    outer: OuterConfigSchema,
    /** results (gradients or deltas) */
    up: oneOf(TENSOR_ENCODINGS),
    /** weights broadcast: f32 sends changed tensors whole, f16/int8 send quantised deltas against the version a worker holds */
    down: oneOf(TENSOR_ENCODINGS),
    /** values per int8 scale */
    blockSize: intIn(16, 65536),
  }),
  v.readonly(),
);

export type OuterConfig = v.InferOutput<typeof OuterConfigSchema>;
export type TrainingConfig = v.InferOutput<typeof TrainingConfigSchema>;

/** Synchronous fp32: what a job without a `training` field does. */
export const SYNC_TRAINING: TrainingConfig = {
  mode: 'sync',
  localSteps: 1,
  outer: { kind: 'plain', learningRate: 1, momentum: 0 },
  up: 'f32',
  down: 'f32',
  blockSize: 256,
};

/** Defaults for fields omitted from a given `training` object: local SGD's, as in DiLoCo (H=50, Nesterov 0.7/0.9), int8 both ways. */
export const TRAINING_DEFAULTS: TrainingConfig = {
  mode: 'local-sgd',
  localSteps: 50,
  outer: { kind: 'nesterov', learningRate: 0.7, momentum: 0.9 },
  up: 'int8',
  down: 'int8',
  blockSize: 256,
};

/** The training config of a job (sync fp32 when it has none). */
export function trainingOf(cfg: { readonly training?: TrainingConfig }): TrainingConfig {
  return cfg.training ?? SYNC_TRAINING;
}

/** For people (the admin page): "sync", "sync, int8 up, int8 down", "local-sgd H=50, nesterov 0.7/0.9, int8 up, int8 down". */
export function describeTraining(cfg: { readonly training?: TrainingConfig }): string {
  const t = cfg.training;
  if (!t) return 'sync';
  const enc = `${t.up} up, ${t.down} down`;
  if (t.mode === 'sync') return `sync, ${enc}`;
  const outer = t.outer.kind === 'nesterov' ? `nesterov ${t.outer.learningRate}/${t.outer.momentum}` : `plain ${t.outer.learningRate}`;
  return `local-sgd H=${t.localSteps}, ${outer}, ${enc}`;
}

/** One local-SGD round: a task per partition, each `steps` local steps from the round's weights. */
export interface RoundPlan {
  readonly round: number;
  readonly phase: Phase;
  readonly phaseIndex: number;
  /** local step index within the phase of this round's first step */
  readonly firstStep: number;
  /** local steps of this round (H, or fewer at a phase's end) */
  readonly steps: number;
  /** true on the last round of a phase */
  readonly phaseEnd: boolean;
}

/**
 * The rounds of a local-SGD job: each phase of the training plan is cut
 * into rounds of H local steps (the last one shorter); rounds never cross a
 * phase's end, since phases train different tensors.
 */
export class LocalSgdPlan {
  private readonly starts: number[] = [];
  /** local steps per partition in each phase */
  private readonly stepsPerPhase: number[] = [];
  readonly totalRounds: number;
  readonly localSteps: number;

  constructor(readonly plan: TrainingPlan, localSteps: number) {
    this.localSteps = localSteps;
    const P = plan.config.partitions;
    let r = 0;
    for (const ph of plan.phases) {
      const S = Math.ceil(ph.iterations / P);
      this.starts.push(r);
      this.stepsPerPhase.push(S);
      r += Math.ceil(S / localSteps);
    }
    this.totalRounds = r;
  }

  at(round: number): RoundPlan {
    if (!Number.isInteger(round) || round < 0 || round >= this.totalRounds) {
      throw new RangeError(`round ${round} is outside the plan's [0, ${this.totalRounds})`);
    }
    let i = this.starts.length - 1;
    while (this.starts[i]! > round) i--;
    const S = this.stepsPerPhase[i]!;
    const firstStep = (round - this.starts[i]!) * this.localSteps;
    const steps = Math.min(this.localSteps, S - firstStep);
    return { round, phase: this.plan.phases[i]!.phase, phaseIndex: i, firstStep, steps, phaseEnd: firstStep + steps === S };
  }

  /**
   * The plan iteration whose hyper-parameters and sampling seed local step
   * `step` (within the phase) of phase `phaseIndex` uses: where step * P
   * plan iterations' examples have passed (capped at the phase's last).
   */
  iterationOf(phaseIndex: number, step: number): number {
    const ph = this.plan.phases[phaseIndex]!;
    return ph.start + Math.min(ph.iterations - 1, step * this.plan.config.partitions);
  }

  /** Probability that an example of a partition of `size` examples is sampled in one local step: a full batch per step. */
  localFraction(phaseIndex: number, size: number): number {
    return Math.min(1, this.plan.phases[phaseIndex]!.config.batchSize / Math.max(1, size));
  }
}
