/**
 * Float64 references for the WGSL kernels and whole tasks (over the shared
 * test/reference64.ts), and the random inputs the checks draw. Shape legend: B = examples, V = visible units,
 * H = hidden units, K = classes; op(A) is M x K, op(B) is K x N.
 */
import type { DenseLayer, RbmLayer } from '../../core/backend.ts';
import { uniform } from '../../core/rng.ts';

import { expectClose, matmul64, type MatmulForm, sigmoid64, softmax64 } from '../reference64.ts';

export { expectClose, matmul64, sigmoid64, softmax64 };
export type Form = MatmulForm;

/** A seeded xorshift generator; each check reports its seed so a failure can be replayed. */
export class Rand {
  private s: number;
  constructor(readonly seed: number) {
    this.s = (seed >>> 0) || 1;
  }
  next(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s / 4294967296;
  }
  /** n values uniform in [lo, hi) */
  floats(n: number, lo = -1, hi = 1): Float32Array {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * this.next();
    return a;
  }
  ints(n: number, hi: number): Uint32Array {
    const a = new Uint32Array(n);
    for (let i = 0; i < n; i++) a[i] = Math.floor(this.next() * hi);
    return a;
  }
}

export function freshSeed(): number {
  return (Math.random() * 2 ** 32) >>> 0;
}

/** Sigmoid layers in float64 (the last one linear when `linearLast`); every activation, input first. */
export function forward64(layers: readonly DenseLayer[], x: ArrayLike<number>, B: number, linearLast: boolean): Float64Array[] {
  const acts: Float64Array[] = [Float64Array.from(x)];
  layers.forEach((l, i) => {
    const { C } = matmul64('nn', acts[i]!, l.W, B, l.nIn, l.nOut);
    const lin = linearLast && i === layers.length - 1;
    for (let m = 0; m < B; m++) for (let n = 0; n < l.nOut; n++) {
      const z = C[m * l.nOut + n]! + l.b[n]!;
      C[m * l.nOut + n] = lin ? z : sigmoid64(z);
    }
    acts.push(C);
  });
  return acts;
}

export interface Cd1Ref {
  dW: Float64Array;
  db: Float64Array;
  dc: Float64Array;
  reconError: number;
  h0: Float64Array;
  s0: Float64Array;
  /** smallest |h0 - u| over the batch: how close a sample came to flipping */
  margin: number;
}

export function cd1Ref(lower: readonly DenseLayer[], rbm: RbmLayer, x: ArrayLike<number>, B: number, ids: Uint32Array, seed: number, iteration: number): Cd1Ref {
  const { V, H, W, b, c } = rbm;
  const v0 = forward64(lower, x, B, false).pop()!;
  const up = (v: Float64Array): Float64Array => {
    const { C } = matmul64('nn', v, W, B, V, H);
    for (let i = 0; i < B * H; i++) C[i] = sigmoid64(C[i]! + c[i % H]!);
    return C;
  };
  const h0 = up(v0);
  const s0 = new Float64Array(B * H);
  let margin = Infinity;
  for (let i = 0; i < B; i++) for (let j = 0; j < H; j++) {
    const u = uniform(seed, iteration, ids[i]!, j);
    const h = h0[i * H + j]!;
    s0[i * H + j] = u < h ? 1 : 0;
    margin = Math.min(margin, Math.abs(h - u));
  }
  const v1 = matmul64('nt', s0, W, B, H, V).C;
  for (let i = 0; i < B * V; i++) v1[i] = sigmoid64(v1[i]! + b[i % V]!);
  const h1 = up(v1);
  const pos = matmul64('tn', v0, h0, V, B, H).C;
  const neg = matmul64('tn', v1, h1, V, B, H).C;
  const dW = pos.map((p, i) => p - neg[i]!);
  const db = new Float64Array(V);
  const dc = new Float64Array(H);
  let reconError = 0;
  for (let i = 0; i < B; i++) {
    for (let j = 0; j < V; j++) {
      const d = v0[i * V + j]! - v1[i * V + j]!;
      db[j]! += d;
      reconError += d * d;
    }
    for (let j = 0; j < H; j++) dc[j]! += h0[i * H + j]! - h1[i * H + j]!;
  }
  return { dW, db, dc, reconError, h0, s0, margin };
}

export interface BackpropRef {
  dW: Float64Array[];
  db: Float64Array[];
  loss: number;
  correct: number;
  probs: Float64Array;
}

export function backpropRef(layers: readonly DenseLayer[], x: ArrayLike<number>, labels: Uint8Array, B: number): BackpropRef {
  const acts = forward64(layers, x, B, true);
  const z = acts.pop()!;
  const K = layers[layers.length - 1]!.nOut;
  const { probs, logp, argmax } = softmax64(z, B, K);
  let loss = 0;
  let correct = 0;
  let delta: Float64Array = probs.slice();
  for (let i = 0; i < B; i++) {
    loss -= logp[i * K + labels[i]!]!;
    if (argmax[i] === labels[i]) correct++;
    delta[i * K + labels[i]!]! -= 1;
  }
  const dW: Float64Array[] = [];
  const db: Float64Array[] = [];
  for (let l = layers.length - 1; l >= 0; l--) {
    const L = layers[l]!;
    dW[l] = matmul64('tn', acts[l]!, delta, L.nIn, B, L.nOut).C;
    db[l] = new Float64Array(L.nOut);
    for (let i = 0; i < B; i++) for (let n = 0; n < L.nOut; n++) db[l]![n]! += delta[i * L.nOut + n]!;
    if (l > 0) {
      const g = matmul64('nt', delta, L.W, B, L.nOut, L.nIn).C;
      const a = acts[l]!;
      for (let i = 0; i < g.length; i++) g[i] = g[i]! * a[i]! * (1 - a[i]!);
      delta = g;
    }
  }
  return { dW, db, loss, correct, probs };
}

/** A dense layer of random weights w in [-scale, scale), biases in [-scale, scale). */
export function randomLayer(r: Rand, nIn: number, nOut: number, scale = 1): DenseLayer {
  return { nIn, nOut, W: r.floats(nIn * nOut, -scale, scale), b: r.floats(nOut, -scale, scale) };
}
