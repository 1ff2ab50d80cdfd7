/**
 * Protocol-perfect Byzantine workers: the honest worker loop (GridWorker:
 * lease, download and hash-check, compute, encode, upload) on a compute
 * backend that rewrites what it computes. Every upload is finite, correctly
 * shaped, carries the right count and stays within the norm bound, so the
 * coordinator's intake checks all pass; only the numbers lie.
 *
 * Attacks (m of n workers, colluding where it says so):
 * - `sign-flip`: the negated gradient.
 * - `bound`: the negated gradient scaled to 0.99 of the norm bound.
 * - `random`: a fresh random direction at 0.99 of the norm bound.
 * - `constant`: one fixed direction (shared by the colluders) at 10x the honest norm.
 * - `stale`: replays the worker's result of an old weights version (same batch size).
 * - `label-flip`: fine-tunes on labels 9 - y (pre-training has no labels: honest there).
 * - `alie` ("A little is enough", Baruch, Baruch and Goldberg, NeurIPS 2019):
 *   the colluders pool their honest per-example gradients of the iteration and
 *   each uploads (mu - z sigma) times its count, coordinate-wise, with
 *   z = Phi^-1((n - s) / n), s = floor(n / 2 + 1) - m: a shift inside the honest spread.
 */
import type { BackpropRequest, BackpropSums, Cd1Request, Cd1Sums, ComputeBackend } from '../../core/backend.ts';

export type AttackName = 'sign-flip' | 'bound' | 'random' | 'constant' | 'stale' | 'label-flip' | 'alie';
export const ATTACKS: readonly AttackName[] = ['sign-flip', 'bound', 'random', 'constant', 'stale', 'label-flip', 'alie'];

/** What the colluders share. */
export interface Collusion {
  readonly n: number;
  readonly m: number;
  readonly normBoundPerExample: number;
  /** alie: per weights version, the colluders' honest per-example gradients (all tensors concatenated) */
  readonly pool: Map<string, { means: Float64Array[]; waiters: (() => void)[] }>;
  /** constant: the shared unit direction per tensor layout */
  readonly directions: Map<number, Float64Array>;
  /** colluders still uploading (a banned one leaves) */
  active: number;
  seed: number;
}

export function createCollusion(n: number, m: number, normBoundPerExample: number): Collusion {
  return { n, m, normBoundPerExample, pool: new Map(), directions: new Map(), active: m, seed: 0x9e3779b9 };
}

/** Inverse of the standard normal CDF (Acklam's rational approximation, |error| < 1.2e-9). */
export function normalQuantile(p: number): number {
  const a = [-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716, 2.506628277459239];
  const b = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572];
  const c = [-0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const q = Math.min(p, 1 - p);
  let x: number;
  if (q < 0.02425) {
    const t = Math.sqrt(-2 * Math.log(q));
    x = (((((c[0]! * t + c[1]!) * t + c[2]!) * t + c[3]!) * t + c[4]!) * t + c[5]!) / ((((d[0]! * t + d[1]!) * t + d[2]!) * t + d[3]!) * t + 1);
    x = p < 0.5 ? x : -x;
  } else {
    const t = p - 0.5, r = t * t;
    x = ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * t) / (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1);
  }
  return x;
}

/** ALIE's z for n workers of which m collude. */
export function alieZ(n: number, m: number): number {
  const s = Math.floor(n / 2 + 1) - m;
  return normalQuantile((n - s) / n);
}

function gauss(state: { seed: number }): number {
  const u = () => {
    state.seed = (Math.imul(state.seed, 1664525) + 1013904223) >>> 0;
    return (state.seed + 0.5) / 2 ** 32;
  };
  return Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
}

function norm(ts: readonly Float32Array[]): number {
  let s = 0;
  for (const t of ts) for (let i = 0; i < t.length; i++) s += t[i]! * t[i]!;
  return Math.sqrt(s);
}

function scaleTo(ts: readonly Float32Array[], target: number): void {
  const n = norm(ts);
  const f = n > 0 ? target / n : 0;
  for (const t of ts) for (let i = 0; i < t.length; i++) t[i] = t[i]! * f;
}

function size(ts: readonly Float32Array[]): number {
  return ts.reduce((a, t) => a + t.length, 0);
}

export interface ByzantineBackend extends ComputeBackend {
  /** uploads rewritten so far */
  readonly rewritten: number;
  /** the worker stops (banned): the colluders stop waiting for it */
  leave(): void;
}

/** `inner` with its results rewritten by `attack`. */
export function byzantineBackend(inner: ComputeBackend, attack: AttackName, collusion: Collusion): ByzantineBackend {
  const own = { seed: collusion.seed++ * 7919 + 1 };
  /** stale: results by batch size and layout, oldest first */
  const history = new Map<string, { version: number; ts: Float32Array[] }[]>();
  let rewritten = 0;
  let left = false;

  async function rewrite(ts: Float32Array[], count: number, version: number | undefined, layout: string): Promise<void> {
    rewritten++;
    const bound = 0.99 * collusion.normBoundPerExample * count;
    switch (attack) {
      case 'sign-flip':
        for (const t of ts) for (let i = 0; i < t.length; i++) t[i] = -t[i]!;
        return;
      case 'bound':
        for (const t of ts) for (let i = 0; i < t.length; i++) t[i] = -t[i]!;
        scaleTo(ts, bound);
        return;
      case 'random':
        for (const t of ts) for (let i = 0; i < t.length; i++) t[i] = gauss(own);
        scaleTo(ts, bound);
        return;
      case 'constant': {
        const n = size(ts);
        let dir = collusion.directions.get(n);
        if (!dir) {
          const st = { seed: 12345 };
          dir = Float64Array.from({ length: n }, () => gauss(st));
          collusion.directions.set(n, dir);
        }
        const target = 10 * norm(ts);
        let k = 0;
        for (const t of ts) for (let i = 0; i < t.length; i++) t[i] = dir[k++]!;
        scaleTo(ts, target);
        return;
      }
      case 'stale': {
        const key = `${layout}|${count}`;
        const list = history.get(key) ?? [];
        history.set(key, list);
        list.push({ version: version ?? 0, ts: ts.map((t) => t.slice()) });
        const old = list[0]!;
        if (old.version === (version ?? 0)) return; // nothing older yet: honest this once
        ts.forEach((t, j) => t.set(old.ts[j]!));
        if (list.length > 64) list.shift();
        return;
      }
      case 'label-flip':
        return; // done on the inputs
      case 'alie': {
        const key = `${layout}|${version}`;
        let entry = collusion.pool.get(key);
        if (!entry) {
          entry = { means: [], waiters: [] };
          collusion.pool.set(key, entry);
        }
        const n = size(ts);
        const mean = new Float64Array(n);
        let k = 0;
        for (const t of ts) for (let i = 0; i < t.length; i++) mean[k++] = t[i]! / count;
        entry.means.push(mean);
        entry.waiters.forEach((w) => w());
        entry.waiters = [];
        const t0 = Date.now();
        while (entry.means.length < collusion.active && Date.now() - t0 < 500) {
          await new Promise<void>((resolve) => {
            entry!.waiters.push(resolve);
            setTimeout(resolve, 50);
          });
        }
        const z = alieZ(collusion.n, collusion.m);
        const ms = entry.means;
        k = 0;
        for (const t of ts) {
          for (let i = 0; i < t.length; i++, k++) {
            let mu = 0;
            for (const m of ms) mu += m[k]!;
            mu /= ms.length;
            let v = 0;
            for (const m of ms) v += (m[k]! - mu) ** 2;
            const sigma = ms.length > 1 ? Math.sqrt(v / (ms.length - 1)) : Math.abs(mu);
            t[i] = (mu - z * sigma) * count;
          }
        }
        if (collusion.pool.size > 8) collusion.pool.delete(collusion.pool.keys().next().value!);
        return;
      }
    }
  }

  return {
    kind: inner.kind,
    adapter: `${inner.adapter}, byzantine: ${attack}`,
    get rewritten() {
      return rewritten;
    },
    leave() {
      if (!left) {
        left = true;
        collusion.active--;
      }
    },
    async cd1(req: Cd1Request): Promise<Cd1Sums> {
      const s = await inner.cd1(req);
      if (attack !== 'label-flip') await rewrite([s.dW, s.db, s.dc], s.count, req.weightsVersion, `cd1:${req.rbm.V}x${req.rbm.H}`);
      return s;
    },
    async backprop(req: BackpropRequest): Promise<BackpropSums> {
      const r = attack === 'label-flip' ? { ...req, labels: Uint8Array.from(req.labels, (y) => 9 - y) } : req;
      const s = await inner.backprop(r);
      if (attack !== 'label-flip') await rewrite([...s.dW, ...s.db], s.count, req.weightsVersion, `bp:${req.layers.map((l) => l.nOut).join('-')}`);
      return s;
    },
    predict: (layers, x, batch) => inner.predict(layers, x, batch),
    propagate: (layers, x, batch) => inner.propagate(layers, x, batch),
    dispose: () => inner.dispose(),
  };
}
