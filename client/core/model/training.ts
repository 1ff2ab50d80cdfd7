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
import type { ConfigIssue } from './config.ts';
import type { Phase, TrainingPlan } from './plan.ts';

export type TrainingMode = 'sync' | 'local-sgd';
/** How a tensor travels: float32, float16 (round to nearest even), int8 with a float32 scale per block (stochastic rounding). */
export type TensorEncoding = 'f32' | 'f16' | 'int8';
export type OuterKind = 'plain' | 'nesterov';

export const TRAINING_MODES: readonly TrainingMode[] = ['sync', 'local-sgd'];
export const TENSOR_ENCODINGS: readonly TensorEncoding[] = ['f32', 'f16', 'int8'];

export interface OuterConfig {
  readonly kind: OuterKind;
  /** eta: 1 with `plain` is federated averaging */
  readonly learningRate: number;
  /** mu: Nesterov momentum (ignored by `plain`) */
  readonly momentum: number;
}

export interface TrainingConfig {
  readonly mode: TrainingMode;
  /** H: local steps per task (local-sgd) */
  readonly localSteps: number;
  readonly outer: OuterConfig;
  /** results (gradients or deltas) */
  readonly up: TensorEncoding;
  /** weights broadcast: f32 sends changed tensors whole, f16/int8 send quantised deltas against the version a worker holds */
  readonly down: TensorEncoding;
  /** values per int8 scale */
  readonly blockSize: number;
}

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

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Validates an untrusted `training` object, filling omitted fields from
 * `base`; pushes every problem (field paths under `training.`) to `issues`.
 */
export function parseTrainingConfig(input: unknown, issues: ConfigIssue[], base: TrainingConfig = TRAINING_DEFAULTS): TrainingConfig {
  const at = (f: string): string => `training.${f}`;
  if (!isObject(input)) {
    issues.push({ field: 'training', message: 'expected an object' });
    return base;
  }
  const known = new Set(['mode', 'localSteps', 'outer', 'up', 'down', 'blockSize']);
  for (const k of Object.keys(input)) if (!known.has(k)) issues.push({ field: at(k), message: 'unknown field' });
  const oneOf = <T extends string>(v: unknown, field: string, options: readonly T[], dflt: T): T => {
    if (v === undefined) return dflt;
    if (typeof v !== 'string' || !options.includes(v as T)) {
      issues.push({ field: at(field), message: `expected one of ${options.map((o) => JSON.stringify(o)).join(', ')}, got ${JSON.stringify(v)}` });
      return dflt;
    }
    return v as T;
  };
  const num = (v: unknown, field: string, dflt: number, lo: number, hi: number, integer: boolean): number => {
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi || (integer && !Number.isInteger(v))) {
      issues.push({ field: at(field), message: `expected ${integer ? 'an integer' : 'a number'} in [${lo}, ${hi}], got ${JSON.stringify(v)}` });
      return dflt;
    }
    return v;
  };
  let outerIn: Record<string, unknown> = {};
  if (input.outer !== undefined) {
    if (!isObject(input.outer)) issues.push({ field: at('outer'), message: 'expected an object' });
    else {
      outerIn = input.outer;
      for (const k of Object.keys(outerIn)) if (!['kind', 'learningRate', 'momentum'].includes(k)) issues.push({ field: at(`outer.${k}`), message: 'unknown field' });
    }
  }
  return {
    mode: oneOf(input.mode, 'mode', TRAINING_MODES, base.mode),
    localSteps: num(input.localSteps, 'localSteps', base.localSteps, 1, 100_000, true),
    outer: {
      kind: oneOf(outerIn.kind, 'outer.kind', ['plain', 'nesterov'] as const, base.outer.kind),
      learningRate: num(outerIn.learningRate, 'outer.learningRate', base.outer.learningRate, 0.001, 10, false),
      momentum: num(outerIn.momentum, 'outer.momentum', base.outer.momentum, 0, 0.999, false),
    },
    up: oneOf(input.up, 'up', TENSOR_ENCODINGS, base.up),
    down: oneOf(input.down, 'down', TENSOR_ENCODINGS, base.down),
    blockSize: num(input.blockSize, 'blockSize', base.blockSize, 16, 65536, true),
  };
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
