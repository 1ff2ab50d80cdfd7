/**
 * The training plan: global iteration t maps to a phase (pre-train RBM k, or
 * fine-tune), its position within the phase, and the hyper-parameters in
 * force. The in-process trainer and the coordinator both walk this plan, so
 * they agree on every iteration's work.
 */
import type { DecaySchedule, JobConfig, PhaseConfig, RampSchedule } from './config.ts';

export type Phase = { readonly kind: 'pretrain'; readonly layer: number } | { readonly kind: 'finetune' };

export interface PhasePlan {
  readonly phase: Phase;
  /** first global iteration of the phase */
  readonly start: number;
  readonly iterations: number;
  readonly iterationsPerEpoch: number;
  /** probability that an example is sampled in one iteration */
  readonly fraction: number;
  readonly config: PhaseConfig;
}

export interface IterationPlan {
  readonly iteration: number;
  readonly phase: Phase;
  readonly phaseIndex: number;
  /** iteration within its phase, from 0 */
  readonly step: number;
  /** fractional epochs elapsed in the phase */
  readonly epoch: number;
  readonly fraction: number;
  readonly learningRate: number;
  readonly momentum: number;
  readonly weightCost: number;
  /** true on the last iteration of a phase */
  readonly phaseEnd: boolean;
}

export function phaseName(p: Phase): string {
  return p.kind === 'pretrain' ? `pretrain layer ${p.layer}` : 'finetune';
}

/** Number of RBMs in the stack: one per hidden layer. */
export function rbmCount(cfg: JobConfig): number {
  return cfg.layers.length - 2;
}

/** Contiguous range [lo, hi) of partition p when n examples are cut into parts. */
export function partitionRange(n: number, parts: number, p: number): { lo: number; hi: number } {
  return { lo: Math.floor((p * n) / parts), hi: Math.floor(((p + 1) * n) / parts) };
}

export function rampValue(s: RampSchedule, epoch: number): number {
  if (s.rampEpochs <= 0 || epoch >= s.rampEpochs) return s.end;
  return s.start + ((s.end - s.start) * epoch) / s.rampEpochs;
}

export function decayValue(s: DecaySchedule, epoch: number): number {
  return Math.max(s.min, s.start * Math.pow(s.decay, Math.floor(epoch)));
}

export class TrainingPlan {
  readonly phases: readonly PhasePlan[];
  readonly totalIterations: number;

  constructor(readonly config: JobConfig, readonly trainCount: number) {
    if (trainCount < config.partitions) {
      throw new Error(`${trainCount} training examples cannot fill ${config.partitions} partitions`);
    }
    const phases: PhasePlan[] = [];
    let start = 0;
    const add = (phase: Phase, pc: PhaseConfig) => {
      const iterationsPerEpoch = Math.max(1, Math.ceil(trainCount / pc.batchSize));
      const iterations = Math.round(pc.epochs * iterationsPerEpoch);
      if (iterations === 0) return;
      phases.push({ phase, start, iterations, iterationsPerEpoch, fraction: Math.min(1, pc.batchSize / trainCount), config: pc });
      start += iterations;
    };
    for (let k = 0; k < rbmCount(config); k++) add({ kind: 'pretrain', layer: k }, config.pretrain);
    add({ kind: 'finetune' }, config.finetune);
    this.phases = phases;
    this.totalIterations = start;
  }

  at(iteration: number): IterationPlan {
    if (!Number.isInteger(iteration) || iteration < 0 || iteration >= this.totalIterations) {
      throw new RangeError(`iteration ${iteration} is outside the plan's [0, ${this.totalIterations})`);
    }
    let i = this.phases.length - 1;
    while (this.phases[i]!.start > iteration) i--;
    const p = this.phases[i]!;
    const step = iteration - p.start;
    const epoch = step / p.iterationsPerEpoch;
    return {
      iteration,
      phase: p.phase,
      phaseIndex: i,
      step,
      epoch,
      fraction: p.fraction,
      learningRate: decayValue(p.config.learningRate, epoch),
      momentum: rampValue(p.config.momentum, epoch),
      weightCost: p.config.weightCost,
      phaseEnd: step === p.iterations - 1,
    };
  }

  /** The partition ranges of the training set. */
  partitions(): { lo: number; hi: number }[] {
    const out: { lo: number; hi: number }[] = [];
    for (let p = 0; p < this.config.partitions; p++) out.push(partitionRange(this.trainCount, this.config.partitions, p));
    return out;
  }
}
