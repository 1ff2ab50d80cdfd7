/**
 * What the coordinator's engine does differently per training mode
 * (core/model/training.ts), in one place: the steps of a job (sync
 * iterations, or local-SGD rounds), the examples each task must count, the
 * result decoding, the update, and the weights broadcast (whole weights as
 * before, or the delta chain of weights-delta.ts).
 *
 * A job without a training config takes exactly the original path: plan
 * iterations, float32 results through decodeResult, the momentum-SGD update
 * on their sum, whole weights of the master tensors each iteration.
 */
import { createHash } from 'node:crypto';
import { dequantize, EncodingError } from '../../core/protocol/encoded-tensors.ts';
import { decodeTrainingResult } from '../../core/protocol/encoded-results.ts';
import { localCount } from '../../core/local-sgd.ts';
import type { JobConfig } from '../../core/model/config.ts';
import type { MomentumSgd } from '../../core/model/optimizer.ts';
import { OuterOptimizer } from '../../core/model/outer.ts';
import { phaseTensors, type Params } from '../../core/model/params.ts';
import { phaseName, type IterationPlan, type Phase, type TrainingPlan } from '../../core/model/plan.ts';
import { LocalSgdPlan, type RoundPlan, type TrainingConfig } from '../../core/model/training.ts';
import { decodeResult, encodeWeights, ProtocolError, type ResultMeta } from '../../core/protocol/index.ts';
import { sampleRange } from '../../core/rng.ts';
import { WeightsChain, type PublishedVersion } from '../../core/protocol/weights-delta.ts';

/** One step of a job: a plan iteration (sync) or a round of H local steps (local SGD). */
export interface Step {
  readonly index: number;
  readonly phase: Phase;
  /** the first step of its phase */
  readonly phaseStart: boolean;
  readonly phaseEnd: boolean;
  /** sync: the iteration's plan (the update's hyper-parameters); local SGD: the plan of the round's first local step */
  readonly it: IterationPlan;
  /** sync: every partition's sample fraction; local SGD: 0 (each local step samples a full batch, LocalSgdPlan.localFraction) */
  readonly fraction: number;
  readonly round: RoundPlan | null;
}

/** A decoded result: float32 tensors the aggregator may own (views of the body for f32). */
export interface ModeResult {
  /** weightsHash: with a training config (the blob the result was computed on) */
  readonly meta: ResultMeta & { readonly weightsHash?: string };
  readonly tensors: Map<string, Float32Array>;
}

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

export class JobMode {
  /** null: the original synchronous fp32 path */
  readonly training: TrainingConfig | null;
  readonly local: LocalSgdPlan | null;
  readonly outer: OuterOptimizer | null;
  private chain: WeightsChain | null = null;

  constructor(readonly cfg: JobConfig, readonly plan: TrainingPlan) {
    this.training = cfg.training ?? null;
    this.local = this.training?.mode === 'local-sgd' ? new LocalSgdPlan(plan, this.training.localSteps) : null;
    this.outer = this.local ? new OuterOptimizer(this.training!.outer) : null;
  }

  /** Steps of the whole job. */
  get total(): number {
    return this.local ? this.local.totalRounds : this.plan.totalIterations;
  }

  /** The phases in steps, for JobSummary. */
  phases(): { phase: string; start: number; iterations: number }[] {
    if (!this.local) return this.plan.phases.map((p) => ({ phase: phaseName(p.phase), start: p.start, iterations: p.iterations }));
    const out: { phase: string; start: number; iterations: number }[] = [];
    for (let r = 0; r < this.local.totalRounds; r++) {
      const rp = this.local.at(r);
      const last = out[out.length - 1];
      if (rp.firstStep === 0) out.push({ phase: phaseName(rp.phase), start: r, iterations: 1 });
      else last!.iterations++;
    }
    return out;
  }

  at(t: number): Step {
    if (!this.local) {
      const it = this.plan.at(t);
      return { index: t, phase: it.phase, phaseStart: it.step === 0, phaseEnd: it.phaseEnd, it, fraction: it.fraction, round: null };
    }
    const rp = this.local.at(t);
    const it = this.plan.at(this.local.iterationOf(rp.phaseIndex, rp.firstStep));
    return { index: t, phase: rp.phase, phaseStart: rp.firstStep === 0, phaseEnd: rp.phaseEnd, it, fraction: 0, round: rp };
  }

  /** Examples a task of step t on partition [lo, hi) trains on (its result's `count`). */
  expected(step: Step, lo: number, hi: number): number {
    if (this.local) return localCount(this.local, step.index, lo, hi);
    return sampleRange(this.cfg.seed, step.index, lo, hi, step.fraction).length;
  }

  /**
   * Checks a result body (untrusted) and gives its float32 tensors. Throws
   * ProtocolError: the original checks for a job without a training config,
   * and for one with: the mode, the encoding, scales, block counts.
   */
  decode(body: Uint8Array, shapes: ReadonlyMap<string, readonly number[]>): ModeResult {
    if (!this.training) {
      const { meta, grads } = decodeResult(body, shapes);
      return { meta, tensors: grads };
    }
    try {
      const d = decodeTrainingResult(body, shapes, this.training);
      // f32: views of the body, no copy; f16 / int8: dequantised into arrays the aggregator owns
      return { meta: d.meta, tensors: new Map([...d.tensors].map(([n, t]) => [n, dequantize(t)])) };
    } catch (e) {
      if (e instanceof EncodingError) throw new ProtocolError(e.code, e.message);
      throw e;
    }
  }

  /** Applies the step's update to the master weights from the aggregated sums of `tasks` tasks over `count` examples. */
  update(params: Params, optimizer: MomentumSgd, step: Step, sums: ReadonlyMap<string, Float32Array>, count: number, tasks: number): void {
    if (this.outer) {
      if (tasks > 0) this.outer.step(params, sums, tasks);
      if (step.phaseEnd) this.outer.reset();
      return;
    }
    if (count > 0) optimizer.step(params, sums, count, step.it);
    if (step.phaseEnd) optimizer.reset();
  }

  /** The optimizer state a checkpoint keeps ("vel.<name>"): the outer momentum in local SGD, else the velocities. */
  velocity(optimizer: MomentumSgd): Map<string, Float32Array> {
    return this.outer ? this.outer.momentum : optimizer.velocity;
  }

  /** Restores checkpointed optimizer state. */
  restore(optimizer: MomentumSgd, velocity: ReadonlyMap<string, Float32Array>): void {
    const into = this.velocity(optimizer);
    for (const [k, v] of velocity) into.set(k, v);
  }

  /** The published weights (null without a training config: they are the master weights). */
  get published(): Params | null {
    return this.chain?.published ?? null;
  }

  /**
   * Publishes version `version`: whole weights of the master tensors without
   * a training config; else the chain's next version (its first from the
   * master weights, or from `resumed` published weights), with the delta
   * from the previous one. `prevStep` is the step whose update led here.
   */
  publish(jobId: string, shapes: ReadonlyMap<string, readonly number[]>, params: Params, version: number, prevStep: Step | null, into?: Uint8Array, resumed?: Params): PublishedVersion {
    if (!this.training) {
      const blob = encodeWeights(this.cfg, params, shapes, version, jobId, into);
      return { version, blob, hash: sha256(blob), delta: null };
    }
    if (!this.chain || !prevStep) {
      const { chain, first } = WeightsChain.start(this.cfg, shapes, jobId, this.training.down, this.training.blockSize, sha256, params, version, resumed ?? this.chain?.published, into);
      this.chain = chain;
      return first;
    }
    return this.chain.next(params, phaseTensors(this.cfg, prevStep.phase), version, prevStep.phaseEnd, into);
  }
}
