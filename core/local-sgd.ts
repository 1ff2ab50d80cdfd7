/**
 * One local-SGD task (model/training.ts): from the round's weights W_r, H
 * local momentum-SGD steps on one partition, each on the full batch that the
 * counter RNG samples for that step, then delta = W_local - W_r for every
 * tensor the phase trains. The inner velocity starts at zero, so the result
 * is a pure function of (weights version, partition, seed, plan), up to float
 * rounding, on any ComputeBackend: checkable by recomputation like a
 * synchronous task.
 */
import type { ComputeBackend } from './backend.ts';
import type { JobConfig } from './model/config.ts';
import { MomentumSgd } from './model/optimizer.ts';
import { phaseTensors, type Params } from './model/params.ts';
import type { LocalSgdPlan } from './model/training.ts';
import { sampleRange } from './rng.ts';
import { computeTask, type ExampleBatch } from './task.ts';

export interface LocalTaskSpec {
  readonly round: number;
  /** the partition's global examples [lo, hi) */
  readonly lo: number;
  readonly hi: number;
  /** the weights version W_r is (for backends that cache weights on a device: local steps change them, so each step gets its own key) */
  readonly weightsVersion?: number;
}

/** The deltas of the phase's tensors, summed loss and correct counts over every local step, and the examples seen. */
export interface LocalResult {
  readonly delta: Map<string, Float32Array>;
  readonly loss: number;
  readonly correct: number;
  readonly count: number;
}

/** The example ids each local step of a round samples from [lo, hi). */
export function localSamples(lsp: LocalSgdPlan, round: number, lo: number, hi: number): Uint32Array[] {
  const rp = lsp.at(round);
  const fraction = lsp.localFraction(rp.phaseIndex, hi - lo);
  const out: Uint32Array[] = [];
  for (let j = 0; j < rp.steps; j++) out.push(sampleRange(lsp.plan.config.seed, lsp.iterationOf(rp.phaseIndex, rp.firstStep + j), lo, hi, fraction));
  return out;
}

/** Examples a task of this round on [lo, hi) trains on, over all its steps (the coordinator's count check). */
export function localCount(lsp: LocalSgdPlan, round: number, lo: number, hi: number): number {
  return localSamples(lsp, round, lo, hi).reduce((n, ids) => n + ids.length, 0);
}

/**
 * Runs the task. `weights` are W_r and are not modified; `gather` returns the
 * examples with the given global ids (from a partition blob or the data set).
 */
export async function computeLocalTask(
  backend: ComputeBackend,
  cfg: JobConfig,
  lsp: LocalSgdPlan,
  weights: Params,
  spec: LocalTaskSpec,
  gather: (ids: Uint32Array) => ExampleBatch,
): Promise<LocalResult> {
  const rp = lsp.at(spec.round);
  const names = phaseTensors(cfg, rp.phase);
  // Only the phase's tensors change; the rest are shared with W_r, read-only.
  const local: Params = new Map(weights);
  for (const n of names) local.set(n, weights.get(n)!.slice());
  const sgd = new MomentumSgd();
  const samples = localSamples(lsp, spec.round, spec.lo, spec.hi);
  let loss = 0;
  let correct = 0;
  let count = 0;
  for (let j = 0; j < rp.steps; j++) {
    const t = lsp.iterationOf(rp.phaseIndex, rp.firstStep + j);
    const it = lsp.plan.at(t);
    const ids = samples[j]!;
    if (ids.length === 0) continue;
    // A device-side weight cache must not reuse step j-1's weights: no version key after the first step.
    const version = j === 0 ? spec.weightsVersion : undefined;
    const r = await computeTask(backend, cfg, local, { phase: rp.phase, iteration: t, seed: cfg.seed, weightsVersion: version }, gather(ids));
    sgd.step(local, r.grads, r.count, it);
    loss += r.loss;
    correct += r.correct;
    count += r.count;
  }
  const delta = new Map<string, Float32Array>();
  for (const n of names) {
    const w0 = weights.get(n)!;
    const w1 = local.get(n)!;
    for (let i = 0; i < w1.length; i++) w1[i] = w1[i]! - w0[i]!;
    delta.set(n, w1);
  }
  return { delta, loss, correct, count };
}
