/**
 * Honest differences between backends on whole tasks, runtime-neutral: the
 * same task (weights, examples, seed) through `computeTask` on the CPU
 * backend (WebAssembly SIMD) and on WebGPU, compared with compareResults
 * (coordinator/trust/compare.ts). Used by the check in cases.ts (Deno on
 * lavapipe, Chromium on SwiftShader) and by bench/backend-agreement.ts
 * (more tasks, real MNIST, a table).
 *
 * Shapes: the DBN's, 784-500-500-2000-10; every phase (pre-training each of
 * the three RBMs, fine-tuning). Weights: the job's initial weights, and
 * "trained-like" ones (uniform +-w, larger, so hidden units saturate and
 * rounding meets the Bernoulli draws more often).
 */
import type { ComputeBackend } from '../../core/backend.ts';
import { parseJobConfig, type JobConfig } from '../../core/model/config.ts';
import { initParams, type Params } from '../../core/model/params.ts';
import type { Phase } from '../../core/model/plan.ts';
import { computeTask, type ExampleBatch } from '../../core/task.ts';
import { compareResults, relativeL2, type Comparison, type Tolerance } from '../../coordinator/trust/compare.ts';
import { Rand } from './reference.ts';

export const DBN_LAYERS = [784, 500, 500, 2000, 10] as const;

export function dbnConfig(seed = 1): JobConfig {
  return parseJobConfig({ name: 'agreement', layers: [...DBN_LAYERS], seed, partitions: 1 });
}

export function dbnPhases(cfg: JobConfig): Phase[] {
  return [...Array.from({ length: cfg.layers.length - 2 }, (_, layer): Phase => ({ kind: 'pretrain', layer })), { kind: 'finetune' }];
}

/** Weights: the job's initial ones (scale 0), or uniform in +-scale for weights and +-scale/2 for biases. */
export function agreementParams(cfg: JobConfig, scale: number, seed: number): Params {
  const p = initParams(cfg);
  if (scale === 0) return p;
  const r = new Rand(seed);
  for (const [name, t] of p) {
    const a = name.endsWith('.W') ? scale : scale / 2;
    for (let i = 0; i < t.length; i++) t[i] = a * (2 * r.next() - 1);
  }
  return p;
}

/** MNIST-like examples when no real ones are given: about 19% of pixels inked, labels uniform. */
export function syntheticBatch(B: number, seed: number): ExampleBatch {
  const r = new Rand(seed);
  const pixels = new Uint8Array(B * 784);
  for (let i = 0; i < pixels.length; i++) if (r.next() < 0.19) pixels[i] = 1 + Math.floor(r.next() * 255);
  return { pixels, labels: Uint8Array.from({ length: B }, () => Math.floor(r.next() * 10)), ids: Uint32Array.from({ length: B }, (_, i) => seed * 1000 + i), dim: 784 };
}

export interface AgreementRow {
  readonly phase: string;
  readonly batch: number;
  readonly weightScale: number;
  readonly comparison: Comparison;
  /** per tensor relative L2 distances */
  readonly tensors: Record<string, number>;
  readonly correct: readonly [number, number];
}

export async function wholeTaskAgreement(
  a: ComputeBackend,
  b: ComputeBackend,
  opts: { batch: number; weightScale: number; iteration: number; seed: number; examples?: ExampleBatch; tolerance?: Tolerance },
): Promise<AgreementRow[]> {
  const cfg = dbnConfig(opts.seed);
  const params = agreementParams(cfg, opts.weightScale, opts.seed + 17);
  const batch = opts.examples ?? syntheticBatch(opts.batch, opts.seed);
  const rows: AgreementRow[] = [];
  for (const phase of dbnPhases(cfg)) {
    const spec = { phase, iteration: opts.iteration, seed: cfg.seed };
    const ra = await computeTask(a, cfg, params, spec, batch);
    const rb = await computeTask(b, cfg, params, spec, batch);
    const kind = phase.kind;
    const comparison = compareResults(ra, rb, kind, opts.tolerance);
    const tensors: Record<string, number> = {};
    for (const [name, g] of ra.grads) tensors[name] = relativeL2(g, rb.grads.get(name)!);
    rows.push({ phase: kind === 'pretrain' ? `pretrain ${phase.layer}` : 'finetune', batch: batch.ids.length, weightScale: opts.weightScale, comparison, tensors, correct: [ra.correct, rb.correct] });
  }
  return rows;
}
