/**
 * One task's computation, shared by the in-process trainer, the Deno worker
 * and the browser worker: (weights, examples, seed) -> gradient sums. Its
 * result is a pure function of its inputs, up to float rounding.
 */
import type { BackpropSums, Cd1Sums, ComputeBackend } from './backend.ts';
import type { JobConfig } from './model/config.ts';
import { lowerLayers, mlpLayers, phaseTensors, rbmLayer, type Params } from './model/params.ts';
import type { Phase } from './model/plan.ts';
import { DatasetError } from './dataset.ts';
import type { Partition } from './protocol/partition.ts';

/** Examples as shipped to workers: uint8 pixels and labels. */
export interface ExampleBatch {
  /** B x D pixel intensities 0..255 */
  readonly pixels: Uint8Array;
  /** B labels */
  readonly labels: Uint8Array;
  /** B global example indices */
  readonly ids: Uint32Array;
  /** D, pixels per example */
  readonly dim: number;
}

export interface TaskSpec {
  readonly phase: Phase;
  readonly iteration: number;
  readonly seed: number;
  /** the weights version the params hold, a cache key for backends that keep weights on a device */
  readonly weightsVersion?: number;
}

/**
 * Gradient sums of the loss to minimise (descent direction) for every tensor
 * the phase trains, plus the loss sum (reconstruction error when
 * pre-training, cross-entropy when fine-tuning), correct predictions
 * (fine-tuning) and the example count.
 */
/** The sums of one or more tasks: gradient sums, loss sum, correct predictions, examples. */
export interface TaskResult {
  readonly grads: Map<string, Float32Array>;
  readonly loss: number;
  readonly correct: number;
  readonly count: number;
}

/**
 * The one element-wise adder of gradient sums: each tensor of `from` into the
 * one of the same name in `into` (changed in place; a tensor `into` lacks is
 * taken over from `from`). Returns the bytes added.
 */
export function addGrads(into: Map<string, Float32Array>, from: ReadonlyMap<string, Float32Array>): number {
  let bytes = 0;
  for (const [name, g] of from) {
    const acc = into.get(name);
    if (!acc) {
      into.set(name, g);
      continue;
    }
    if (acc.length !== g.length) throw new RangeError(`gradient "${name}": ${acc.length} values vs ${g.length}`);
    const n = g.length;
    for (let i = 0; i < n; i++) acc[i] += g[i]!;
    bytes += g.byteLength;
  }
  return bytes;
}

/** a + b: b's gradients added into a's arrays (a's arrays are reused), the counts summed. */
export function addResults(a: TaskResult, b: TaskResult): TaskResult {
  addGrads(a.grads, b.grads);
  return { grads: a.grads, loss: a.loss + b.loss, correct: a.correct + b.correct, count: a.count + b.count };
}

/** Pixels 0..255 to intensities in [0, 1]. */
export function toUnit(pixels: Uint8Array): Float32Array {
  const x = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) x[i] = pixels[i]! / 255;
  return x;
}

export async function computeTask(
  backend: ComputeBackend,
  cfg: JobConfig,
  params: Params,
  spec: TaskSpec,
  batch: ExampleBatch,
): Promise<TaskResult> {
  checkBatch(cfg, batch);
  const B = batch.ids.length;
  if (B === 0) return emptyResult(cfg, params, spec.phase);
  const x = toUnit(batch.pixels);
  if (spec.phase.kind === 'pretrain') {
    const k = spec.phase.layer;
    const s = await backend.cd1({
      lower: lowerLayers(cfg, params, k),
      rbm: rbmLayer(cfg, params, k),
      x,
      batch: B,
      exampleIds: batch.ids,
      rng: { seed: cfg.seed, iteration: spec.iteration },
      weightsVersion: spec.weightsVersion,
    });
    return cd1Result(k, s);
  }
  const s = await backend.backprop({ layers: mlpLayers(cfg, params), x, labels: batch.labels, batch: B, weightsVersion: spec.weightsVersion });
  return backpropResult(cfg, s);
}

/**
 * Several tasks summed (a worker's bundle: tasks of one iteration and weights
 * version), in this order. Where the backend has the batched entry points
 * (cd1Bundle / backpropBundle, e.g. webgpu: one submit and one readback for
 * the whole bundle) and the tasks share phase, iteration and weights version,
 * it makes one call; otherwise one computeTask per task, added with
 * addResults. Either way the result is the sum of computeTask of each, up to
 * float summation order.
 */
export async function computeTasks(
  backend: ComputeBackend,
  cfg: JobConfig,
  params: Params,
  specs: readonly TaskSpec[],
  batches: readonly ExampleBatch[],
): Promise<TaskResult> {
  if (!specs.length || specs.length !== batches.length) throw new Error(`computeTasks: ${specs.length} tasks and ${batches.length} example batches`);
  const s0 = specs[0]!;
  const samePhase = (s: TaskSpec): boolean =>
    s.phase.kind === s0.phase.kind && (s.phase.kind !== 'pretrain' || s0.phase.kind !== 'pretrain' || s.phase.layer === s0.phase.layer);
  const one = specs.every((s) => samePhase(s) && s.iteration === s0.iteration && s.seed === s0.seed && s.weightsVersion === s0.weightsVersion);
  const bundled = specs.length > 1 && one && (s0.phase.kind === 'pretrain' ? backend.cd1Bundle : backend.backpropBundle) !== undefined;
  if (!bundled) {
    let sum: TaskResult | null = null;
    for (let i = 0; i < specs.length; i++) {
      const r = await computeTask(backend, cfg, params, specs[i]!, batches[i]!);
      sum = sum ? addResults(sum, r) : r;
    }
    return sum!;
  }
  const nonEmpty = batches.filter((b) => b.ids.length > 0);
  for (const b of batches) checkBatch(cfg, b);
  if (!nonEmpty.length) return emptyResult(cfg, params, s0.phase);
  if (s0.phase.kind === 'pretrain') {
    const k = s0.phase.layer;
    const lower = lowerLayers(cfg, params, k);
    const rbm = rbmLayer(cfg, params, k);
    const s = await backend.cd1Bundle!(nonEmpty.map((b) => ({
      lower, rbm, x: toUnit(b.pixels), batch: b.ids.length, exampleIds: b.ids,
      rng: { seed: cfg.seed, iteration: s0.iteration }, weightsVersion: s0.weightsVersion,
    })));
    return cd1Result(k, s);
  }
  const layers = mlpLayers(cfg, params);
  const s = await backend.backpropBundle!(nonEmpty.map((b) => ({ layers, x: toUnit(b.pixels), labels: b.labels, batch: b.ids.length, weightsVersion: s0.weightsVersion })));
  return backpropResult(cfg, s);
}

function checkBatch(cfg: JobConfig, batch: ExampleBatch): void {
  const B = batch.ids.length;
  if (batch.pixels.length !== B * batch.dim || batch.labels.length !== B) {
    throw new Error(`example batch of ${B} ids has ${batch.pixels.length} pixels and ${batch.labels.length} labels`);
  }
  if (batch.dim !== cfg.layers[0]) throw new Error(`examples have ${batch.dim} pixels, the network's input is ${cfg.layers[0]}`);
}

// CD-1 statistics point uphill on the log-likelihood: negate for a descent gradient.
function cd1Result(k: number, s: Cd1Sums): TaskResult {
  return {
    grads: new Map([
      [`rbm${k}.W`, negate(s.dW)],
      [`rbm${k}.vbias`, negate(s.db)],
      [`rbm${k}.hbias`, negate(s.dc)],
    ]),
    loss: s.reconError,
    correct: 0,
    count: s.count,
  };
}

function backpropResult(cfg: JobConfig, s: BackpropSums): TaskResult {
  const grads = new Map<string, Float32Array>();
  const nRbm = cfg.layers.length - 2;
  for (let k = 0; k < nRbm; k++) {
    grads.set(`rbm${k}.W`, s.dW[k]!);
    grads.set(`rbm${k}.hbias`, s.db[k]!);
  }
  grads.set('out.W', s.dW[nRbm]!);
  grads.set('out.b', s.db[nRbm]!);
  return { grads, loss: s.loss, correct: s.correct, count: s.count };
}

function negate(a: Float32Array): Float32Array {
  for (let i = 0; i < a.length; i++) a[i] = -a[i]!;
  return a;
}

function emptyResult(cfg: JobConfig, params: Params, phase: Phase): TaskResult {
  const names = phaseTensors(cfg, phase);
  return { grads: new Map(names.map((n) => [n, new Float32Array(params.get(n)!.length)])), loss: 0, correct: 0, count: 0 };
}

/** The examples with the given global ids, copied out of the partition in the given order. */
export function batchFromPartition(part: Partition, ids: Uint32Array | readonly number[]): ExampleBatch {
  const B = ids.length;
  const { dim } = part;
  const pixels = new Uint8Array(B * dim);
  const labels = new Uint8Array(B);
  const out = Uint32Array.from(ids);
  for (let b = 0; b < B; b++) {
    const id = ids[b]!;
    if (!Number.isInteger(id) || id < part.lo || id >= part.hi || out[b] !== id) {
      throw new DatasetError(`example ${id} is not in partition ${part.index}, which holds [${part.lo}, ${part.hi})`);
    }
    const i = id - part.lo;
    pixels.set(part.pixels.subarray(i * dim, (i + 1) * dim), b * dim);
    labels[b] = part.labels[i]!;
  }
  return { pixels, labels, ids: out, dim };
}
