/**
 * Whether two results of the same task agree: the comparison that
 * verification by recomputation uses. A task's result is a pure function of
 * (weights, examples, seed), so two honest workers differ only by float
 * rounding (summation order, fused multiply-add, exp/log approximations of
 * each backend), plus, when pre-training, the Bernoulli draws that rounding
 * flips (u within rounding of h0). The tolerance is set from measured honest
 * differences (bench/backend-agreement.ts; figures in bench/README.md).
 *
 * Per tensor: relative L2 distance ||a - b|| / max(||a||, ||b||, floor),
 * floor = floorPerExample * count (so a tensor of gradients near zero is not
 * held to a relative bound it cannot meet). Plus: counts equal, loss within a
 * relative bound, correct predictions within a small absolute bound (an
 * argmax can flip on a near tie).
 */

/** The part of a result the comparison reads (TaskResult, Sums, a decoded upload). */
export interface Comparable {
  readonly grads: ReadonlyMap<string, Float32Array>;
  readonly loss: number;
  readonly correct: number;
  readonly count: number;
}

export interface Tolerance {
  /** per tensor relative L2 distance, pre-training (CD-1: rounding can flip a Bernoulli draw) */
  readonly pretrainRelL2: number;
  /** per tensor relative L2 distance, fine-tuning (deterministic) */
  readonly finetuneRelL2: number;
  /** relative difference of the loss sums */
  readonly lossRel: number;
  /** absolute floor of a tensor's norm per example */
  readonly floorPerExample: number;
  /** correct predictions may differ by this many plus this fraction of the count */
  readonly correctAbs: number;
  readonly correctRel: number;
}

/**
 * The default tolerance. Measured worst honest differences between the CPU
 * backend (WebAssembly SIMD) and WebGPU (lavapipe, SwiftShader) on whole
 * tasks of the DBN's shapes, B = 17, 100, 1000 (bench/README.md, "Backend
 * agreement"): about 2e-6 relative L2 per tensor in both phases, 1.4e-7 on
 * the loss. Fine-tuning and the loss get 50x that; pre-training gets 1e-2,
 * room for a few Bernoulli draws that rounding flips (one flip moves a
 * tensor by about 1/sqrt(B H) relative; none was seen in the runs).
 * Attacks worth anything move a tensor by far more (a sign flip by 2, a
 * random direction by ~1.4, "a little is enough" by a fraction of the
 * honest spread between partitions, which is O(1) relative).
 */
export const DEFAULT_TOLERANCE: Tolerance = {
  pretrainRelL2: 1e-2,
  finetuneRelL2: 1e-4,
  lossRel: 1e-4,
  floorPerExample: 1e-4,
  correctAbs: 1,
  correctRel: 0.002,
};

export interface Comparison {
  readonly agree: boolean;
  /** the tensor with the largest relative distance, and that distance */
  readonly worstTensor: string | null;
  readonly worstRelL2: number;
  readonly lossRel: number;
  /** why they disagree, for people; '' when they agree */
  readonly detail: string;
}

/** Relative L2 distance of two tensors, with a floor on the norm. */
export function relativeL2(a: Float32Array, b: Float32Array, floor = 0): number {
  if (a.length !== b.length) return Infinity;
  let d = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!, y = b[i]!;
    d += (x - y) * (x - y);
    na += x * x;
    nb += y * y;
  }
  const scale = Math.max(Math.sqrt(na), Math.sqrt(nb), floor);
  return scale === 0 ? 0 : Math.sqrt(d) / scale;
}

export function compareResults(a: Comparable, b: Comparable, phase: 'pretrain' | 'finetune', tol: Tolerance = DEFAULT_TOLERANCE): Comparison {
  const bound = phase === 'pretrain' ? tol.pretrainRelL2 : tol.finetuneRelL2;
  const problems: string[] = [];
  if (a.count !== b.count) problems.push(`counts ${a.count} vs ${b.count}`);
  const names = new Set([...a.grads.keys(), ...b.grads.keys()]);
  let worstTensor: string | null = null, worstRelL2 = 0;
  for (const name of names) {
    const x = a.grads.get(name), y = b.grads.get(name);
    if (!x || !y) {
      problems.push(`tensor ${name} only in one result`);
      worstTensor = name;
      worstRelL2 = Infinity;
      continue;
    }
    const r = relativeL2(x, y, tol.floorPerExample * Math.max(a.count, 1));
    if (worstTensor === null || !(r <= worstRelL2)) {
      worstTensor = name;
      worstRelL2 = r;
    }
    if (!(r <= bound)) problems.push(`${name}: relative L2 distance ${r.toExponential(2)} over ${bound}`);
  }
  const lossScale = Math.max(Math.abs(a.loss), Math.abs(b.loss), 1e-12);
  const lossRel = Math.abs(a.loss - b.loss) / lossScale;
  if (!(lossRel <= tol.lossRel)) problems.push(`loss ${a.loss} vs ${b.loss} (relative ${lossRel.toExponential(2)} over ${tol.lossRel})`);
  const correctBound = tol.correctAbs + tol.correctRel * Math.max(a.count, b.count);
  if (!(Math.abs(a.correct - b.correct) <= correctBound)) problems.push(`correct ${a.correct} vs ${b.correct} (over ${correctBound.toFixed(1)} apart)`);
  return { agree: problems.length === 0, worstTensor, worstRelL2, lossRel, detail: problems.join('; ') };
}
