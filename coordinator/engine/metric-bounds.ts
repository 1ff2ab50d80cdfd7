/**
 * What a result's metrics can possibly be, from the model alone, so a worker
 * cannot report a loss no honest computation reaches (the admin page would
 * chart it). Recomputation (trust) checks the rest.
 *
 * Shapes: B = examples, V = visible units of RBM k, H = hidden units of the
 * last hidden layer, K = classes.
 * - pre-training (CD-1): the reconstruction error of one example is
 *   sum((v0 - v1)^2) over V units, each term in [0, 1] (pixels scaled to
 *   [0, 1], probabilities in [0, 1]): at most V;
 * - fine-tuning: the cross-entropy of one example is
 *   log(sum_j exp(z_j)) - z_label <= log K + max_j z_j - min_j z_j, with
 *   logits z = h out.W + out.b and h in [0, 1]^H (sigmoid units), so
 *   z_j in [b_j + sum_i min(0, W_ij), b_j + sum_i max(0, W_ij)].
 */
import type { JobConfig } from '../../core/model/config.ts';
import type { Params } from '../../core/model/params.ts';
import type { Phase } from '../../core/model/plan.ts';

/** Slack for float32 arithmetic on the worker (relative, and absolute per example). */
const RELATIVE_SLACK = 1e-3;
const ABSOLUTE_SLACK = 1e-3;

/** The largest loss one example can contribute in this phase, with these weights. */
export function lossBoundPerExample(cfg: JobConfig, phase: Phase, params: Params): number {
  const exact = phase.kind === 'pretrain' ? cfg.layers[phase.layer]! : crossEntropyBound(cfg, params);
  return exact * (1 + RELATIVE_SLACK) + ABSOLUTE_SLACK;
}

/** log K + the widest spread of the output logits over h in [0, 1]^H. */
function crossEntropyBound(cfg: JobConfig, params: Params): number {
  const L = cfg.layers;
  const H = L[L.length - 2]!;
  const K = L[L.length - 1]!;
  const W = params.get('out.W')!; // H x K, row-major
  const b = params.get('out.b')!;
  let hi = -Infinity;
  let lo = Infinity;
  for (let j = 0; j < K; j++) {
    let up = b[j]!;
    let down = b[j]!;
    for (let i = 0; i < H; i++) {
      const w = W[i * K + j]!;
      if (w > 0) up += w;
      else down += w;
    }
    hi = Math.max(hi, up);
    lo = Math.min(lo, down);
  }
  return Math.log(K) + (hi - lo);
}
