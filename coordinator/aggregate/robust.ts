/**
 * Robust aggregation rules over per-source partial sums. Each source (a
 * worker) contributes the sum S_k of its n_k examples' gradients; a rule
 * estimates the per-example mean gradient from the sources' means
 * m_k = S_k / n_k, weighted by w_k = n_k / N, and hands out that estimate
 * times N (so the update, which divides by the count, is unchanged). The
 * count, loss and correct are the plain sums (the update divides by the
 * count; loss and correct are only reported). When every source's mean is
 * the same the rules give the plain sum, up to float rounding.
 *
 * Legend: K = sources this iteration, N = examples, P = coordinates (all
 * tensors together).
 *
 * What each rule costs in accuracy (with no attacker at all):
 * - `median` (coordinate-wise weighted median): keeps one source's value
 *   per coordinate. For i.i.d. honest noise its variance is about pi/2 times
 *   the mean's (64% efficiency), and with partitions that differ (non-i.i.d.
 *   data, few sources) it is biased towards the typical partition; it ignores
 *   the other sources' information entirely. Breaks down at half the weight.
 * - `trimmed-mean` (coordinate-wise, `trim` of the weight cut at each end):
 *   between the mean and the median; discards 2 * trim of the honest
 *   information per coordinate. Breaks down once attackers hold more than
 *   `trim` of the weight on one side.
 * - `centered-clip` (Karimireddy, He and Jaggi, ICML 2021): starts from the
 *   median and moves the center by the weighted mean of the sources'
 *   offsets, each clipped to L2 radius tau, `iterations` times. A source
 *   farther than tau from the center counts only tau: with tau below the
 *   honest spread honest sources are shrunk too (bias towards the start);
 *   an attacker moves the center by at most w_k * tau per round. The paper
 *   centers on the previous step's momentum and relies on worker momentum to
 *   shrink the honest spread; workers here send raw gradients, so the start
 *   is the coordinate-wise median and tau defaults to the weighted median of
 *   the sources' distances from it.
 *
 * None of them stops a protocol-perfect cheater who stays inside the honest
 * spread ("a little is enough"); exact recomputation does (coordinator
 * verification). Memory: every source's partial is held until finish(), so
 * K copies of the model's gradients; time O(P K log K).
 */
import { AggregationError, BaseAggregator, type PartialAggregate } from './base.ts';

export type RobustRule = 'median' | 'trimmed-mean' | 'centered-clip';
export const ROBUST_RULES: readonly RobustRule[] = ['median', 'trimmed-mean', 'centered-clip'];

export interface RobustOptions {
  readonly rule: RobustRule;
  /** trimmed-mean: fraction of the weight cut at each end, in [0, 0.5); default 0.25 */
  readonly trim?: number;
  /** centered-clip: L2 radius for the per-example mean offsets; default: the weighted median distance from the start */
  readonly clipRadius?: number;
  /** centered-clip: rounds; default 3 */
  readonly iterations?: number;
}

/** Weighted coordinate-wise order statistics on K values, sorted in place through `order`. */
function sortByValue(vals: Float64Array, order: Int32Array): void {
  const k = vals.length;
  for (let i = 0; i < k; i++) order[i] = i;
  for (let i = 1; i < k; i++) {
    const o = order[i]!;
    const v = vals[o]!;
    let j = i - 1;
    while (j >= 0 && vals[order[j]!]! > v) {
      order[j + 1] = order[j]!;
      j--;
    }
    order[j + 1] = o;
  }
}

/** The weighted median (weights sum to 1): the value where the cumulative weight reaches 1/2, the midpoint on a tie. */
export function weightedMedian(vals: Float64Array, w: Float64Array, order: Int32Array): number {
  sortByValue(vals, order);
  let cum = 0;
  const k = vals.length;
  for (let i = 0; i < k; i++) {
    const o = order[i]!;
    cum += w[o]!;
    if (cum >= 0.5 - 1e-12) {
      if (Math.abs(cum - 0.5) <= 1e-12 && i + 1 < k) return (vals[o]! + vals[order[i + 1]!]!) / 2;
      return vals[o]!;
    }
  }
  return vals[order[k - 1]!]!;
}

/** The weighted mean of the weight between `trim` and `1 - trim` (weights sum to 1); trim 0 is the weighted mean. */
export function weightedTrimmedMean(vals: Float64Array, w: Float64Array, order: Int32Array, trim: number): number {
  sortByValue(vals, order);
  const lo = trim, hi = 1 - trim;
  let cum = 0, acc = 0, kept = 0;
  for (let i = 0; i < vals.length; i++) {
    const o = order[i]!;
    const start = cum;
    cum += w[o]!;
    const overlap = Math.min(cum, hi) - Math.max(start, lo);
    if (overlap > 0) {
      acc += overlap * vals[o]!;
      kept += overlap;
    }
  }
  return kept > 0 ? acc / kept : weightedMedian(vals, w, order);
}

export class RobustAggregator extends BaseAggregator {
  readonly kind: string;
  private readonly trim: number;
  private readonly iterations: number;
  /** one partial per source, in arrival order; partials without a source are sources of their own */
  private groups = new Map<string, PartialAggregate>();
  private anonymous = 0;

  constructor(readonly options: RobustOptions) {
    super();
    const { rule } = options;
    if (!ROBUST_RULES.includes(rule)) throw new AggregationError(`unknown robust rule "${rule}": use ${ROBUST_RULES.join(', ')}`);
    this.trim = options.trim ?? 0.25;
    if (!(this.trim >= 0 && this.trim < 0.5)) throw new AggregationError(`trimmed-mean trim must be in [0, 0.5), got ${options.trim}`);
    this.iterations = options.iterations ?? 3;
    if (!Number.isInteger(this.iterations) || this.iterations < 1) throw new AggregationError(`centered-clip iterations must be an integer >= 1, got ${options.iterations}`);
    if (options.clipRadius !== undefined && !(options.clipRadius > 0 && Number.isFinite(options.clipRadius))) {
      throw new AggregationError(`centered-clip radius must be a finite number > 0, got ${options.clipRadius}`);
    }
    this.kind = rule === 'trimmed-mean' ? `trimmed-mean(${this.trim})` : rule;
  }

  /** Every source's partial is a target until finish(). */
  maxTargets(n: number): number {
    return n;
  }

  protected reset(): void {
    this.groups = new Map();
    this.anonymous = 0;
  }

  protected push(p: PartialAggregate, source?: string): void {
    const key = source === undefined ? `\u0000${this.anonymous++}` : `s:${source}`;
    const g = this.groups.get(key);
    if (g) this.merge(g, p);
    else this.groups.set(key, p);
  }

  protected drain(): PartialAggregate {
    const groups = [...this.groups.values()];
    this.groups = new Map();
    const covers = new Set<string>();
    let loss = 0, correct = 0, count = 0;
    for (const g of groups) {
      for (const t of g.covers) covers.add(t);
      loss += g.loss;
      correct += g.correct;
      count += g.count;
    }
    if (groups.length === 0) return { grads: new Map(), loss, correct, count, covers };
    const first = groups[0]!;
    for (const g of groups) {
      if (g.grads.size !== first.grads.size) throw new AggregationError(`sources carry ${g.grads.size} vs ${first.grads.size} tensors`);
      for (const [name, t] of first.grads) {
        const o = g.grads.get(name);
        if (!o || o.length !== t.length) throw new AggregationError(`gradient "${name}": a source carries ${o ? o.length : 'no'} values, another ${t.length}`);
      }
    }
    // what a sum would read: every source's tensors after the first
    for (const g of groups.slice(1)) for (const t of g.grads.values()) this.bytesSummed += t.byteLength;
    if (groups.length === 1 || count <= 0) {
      // one voice (or no examples): nothing to be robust against; the plain sum
      const grads = new Map<string, Float32Array>();
      for (const name of first.grads.keys()) {
        const acc = new Float32Array(first.grads.get(name)!.length);
        for (const g of groups) {
          const t = g.grads.get(name)!;
          for (let i = 0; i < acc.length; i++) acc[i] += t[i]!;
        }
        grads.set(name, acc);
      }
      return { grads, loss, correct, count, covers };
    }
    const w = Float64Array.from(groups, (g) => g.count / count);
    const inv = groups.map((g) => (g.count > 0 ? 1 / g.count : 0));
    const center = this.options.rule === 'centered-clip' ? this.centeredClip(groups, w, inv) : this.coordinatewise(groups, w, inv);
    const grads = new Map<string, Float32Array>();
    for (const [name, c] of center) grads.set(name, Float32Array.from(c, (x) => x * count));
    return { grads, loss, correct, count, covers };
  }

  /** median or trimmed mean, coordinate by coordinate, of the sources' per-example means */
  private coordinatewise(groups: PartialAggregate[], w: Float64Array, inv: number[], rule = this.options.rule): Map<string, Float64Array> {
    const k = groups.length;
    const vals = new Float64Array(k);
    const order = new Int32Array(k);
    const out = new Map<string, Float64Array>();
    for (const name of groups[0]!.grads.keys()) {
      const ts = groups.map((g) => g.grads.get(name)!);
      const c = new Float64Array(ts[0]!.length);
      for (let i = 0; i < c.length; i++) {
        for (let j = 0; j < k; j++) vals[j] = ts[j]![i]! * inv[j]!;
        c[i] = rule === 'trimmed-mean' ? weightedTrimmedMean(vals, w, order, this.trim) : weightedMedian(vals, w, order);
      }
      out.set(name, c);
    }
    return out;
  }

  private centeredClip(groups: PartialAggregate[], w: Float64Array, inv: number[]): Map<string, Float64Array> {
    const k = groups.length;
    const center = this.coordinatewise(groups, w, inv, 'median');
    const names = [...center.keys()];
    const dist = new Float64Array(k);
    const distance = (): void => {
      for (let j = 0; j < k; j++) {
        let s = 0;
        for (const name of names) {
          const t = groups[j]!.grads.get(name)!;
          const c = center.get(name)!;
          for (let i = 0; i < c.length; i++) {
            const d = t[i]! * inv[j]! - c[i]!;
            s += d * d;
          }
        }
        dist[j] = Math.sqrt(s);
      }
    };
    distance();
    const tau = this.options.clipRadius ?? weightedMedian(Float64Array.from(dist), w, new Int32Array(k));
    for (let round = 0; round < this.iterations; round++) {
      if (round > 0) distance();
      const scale = Float64Array.from(dist, (d, j) => w[j]! * (d > tau && d > 0 ? tau / d : 1));
      for (const name of names) {
        const c = center.get(name)!;
        const ts = groups.map((g) => g.grads.get(name)!);
        for (let i = 0; i < c.length; i++) {
          const ci = c[i]!;
          let step = 0;
          for (let j = 0; j < k; j++) step += scale[j]! * (ts[j]![i]! * inv[j]! - ci);
          c[i] = ci + step;
        }
      }
    }
    return center;
  }
}
