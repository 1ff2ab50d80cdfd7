/**
 * Float64 references (over the shared test/reference64.ts) and test helpers
 * for the CPU backend's tests: a seeded
 * generator for fresh inputs, NaN-poisoned outputs, the engines under test,
 * and the MLP / CD-1 math written directly in float64.
 *
 * Shape legend: B = rows, V = visible, H = hidden, K = classes; M x K times
 * K x N for matmul.
 */
import type { DenseLayer } from '../../../core/backend.ts';
import { jsEngine, type CpuEngine, type MatmulForm } from '../../../core/cpu/index.ts';
import { createSimdEngine } from '../../../core/cpu/simd.ts';
import type { Workspace } from '../../../core/cpu/workspace.ts';
import { expectClose, matmul64, setReplayHint, sigmoid64, softmax64 } from '../../reference64.ts';

export { expectClose, matmul64, sigmoid64, softmax64 };

/** Seed for this run's inputs: CPU_TEST_SEED to replay a failure, else fresh each run. */
export const SEED = Number(process.env.CPU_TEST_SEED ?? Math.floor(Math.random() * 2 ** 31));
setReplayHint(`CPU_TEST_SEED=${SEED}`);

/** mulberry32: a small seeded generator of uniforms in [0, 1). */
export function generator(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function uniformArray(rand: () => number, n: number, lo = -1, hi = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * rand();
  return a;
}

export function poisoned(n: number): Float32Array {
  return new Float32Array(n).fill(NaN);
}

/** A workspace that NaN-fills every buffer it hands out, so reading an unwritten value shows. */
export class PoisonWorkspace implements Workspace {
  constructor(private readonly inner: Workspace) {}
  reserve(lengths: readonly number[]): Float32Array[] {
    const views = this.inner.reserve(lengths);
    for (const v of views) v.fill(NaN);
    return views;
  }
}

export interface NamedEngine {
  readonly name: string;
  readonly engine: CpuEngine;
}

/** Both engines, each with a poisoning workspace. Node has WebAssembly SIMD, so its absence is a failure. */
export async function testEngines(): Promise<NamedEngine[]> {
  const simd = await createSimdEngine();
  if (!simd) throw new Error('WebAssembly SIMD engine failed to load in Node');
  return [jsEngine(), simd].map((e) => ({
    name: e.name,
    engine: { name: e.name, matmul: e.matmul, workspace: new PoisonWorkspace(e.workspace) },
  }));
}

/** Unit roundoff of float32. */
export const U32 = 2 ** -24;

export function bitsEqual(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/** y = act(x W + b) in float64 for B rows; act 'sigmoid' or 'linear'. */
export function dense64(x: ArrayLike<number>, l: { nIn: number; nOut: number; W: ArrayLike<number>; b: ArrayLike<number> }, B: number, act: 'sigmoid' | 'linear'): Float64Array {
  const y = new Float64Array(B * l.nOut);
  for (let i = 0; i < B; i++) {
    for (let j = 0; j < l.nOut; j++) {
      let s = l.b[j]!;
      for (let k = 0; k < l.nIn; k++) s += x[i * l.nIn + k]! * l.W[k * l.nOut + j]!;
      y[i * l.nOut + j] = act === 'sigmoid' ? sigmoid64(s) : s;
    }
  }
  return y;
}

/** Summed cross-entropy of the MLP (sigmoid hidden, softmax out) in float64. */
export function mlpLoss64(layers: readonly DenseLayer64[], x: ArrayLike<number>, labels: Uint8Array, B: number): number {
  let a: ArrayLike<number> = x;
  for (let l = 0; l < layers.length; l++) a = dense64(a, layers[l]!, B, l < layers.length - 1 ? 'sigmoid' : 'linear');
  const K = layers[layers.length - 1]!.nOut;
  let loss = 0;
  for (let i = 0; i < B; i++) {
    let max = -Infinity;
    for (let j = 0; j < K; j++) max = Math.max(max, a[i * K + j]!);
    let s = 0;
    for (let j = 0; j < K; j++) s += Math.exp(a[i * K + j]! - max);
    loss += Math.log(s) + max - a[i * K + labels[i]!]!;
  }
  return loss;
}

export interface DenseLayer64 {
  nIn: number;
  nOut: number;
  W: Float64Array;
  b: Float64Array;
}

export function toLayer64(l: DenseLayer): DenseLayer64 {
  return { nIn: l.nIn, nOut: l.nOut, W: Float64Array.from(l.W), b: Float64Array.from(l.b) };
}

/** Analytic backprop of the summed cross-entropy in float64: dW, db per layer. */
export function mlpGrad64(layers: readonly DenseLayer64[], x: ArrayLike<number>, labels: Uint8Array, B: number): { dW: Float64Array[]; db: Float64Array[] } {
  const acts: ArrayLike<number>[] = [x];
  for (let l = 0; l < layers.length; l++) acts.push(dense64(acts[l]!, layers[l]!, B, l < layers.length - 1 ? 'sigmoid' : 'linear'));
  const L = layers.length;
  const K = layers[L - 1]!.nOut;
  let D: Float64Array = softmax64(acts[L]!, B, K).probs;
  for (let i = 0; i < B; i++) D[i * K + labels[i]!]! -= 1;
  const dW: Float64Array[] = new Array(L);
  const db: Float64Array[] = new Array(L);
  for (let l = L - 1; l >= 0; l--) {
    const { nIn, nOut, W } = layers[l]!;
    const a = acts[l]!;
    const gW = new Float64Array(nIn * nOut);
    const gb = new Float64Array(nOut);
    for (let i = 0; i < B; i++) {
      for (let j = 0; j < nOut; j++) {
        const d = D[i * nOut + j]!;
        gb[j]! += d;
        for (let k = 0; k < nIn; k++) gW[k * nOut + j]! += a[i * nIn + k]! * d;
      }
    }
    dW[l] = gW;
    db[l] = gb;
    if (l === 0) break;
    const G = new Float64Array(B * nIn);
    for (let i = 0; i < B; i++) {
      for (let k = 0; k < nIn; k++) {
        let s = 0;
        for (let j = 0; j < nOut; j++) s += D[i * nOut + j]! * W[k * nOut + j]!;
        const ak = a[i * nIn + k]!;
        G[i * nIn + k] = s * ak * (1 - ak);
      }
    }
    D = G;
  }
  return { dW, db };
}

export function randomLayers(rand: () => number, sizes: readonly number[], scale: number): DenseLayer[] {
  const layers: DenseLayer[] = [];
  for (let l = 0; l + 1 < sizes.length; l++) {
    const nIn = sizes[l]!;
    const nOut = sizes[l + 1]!;
    layers.push({ nIn, nOut, W: uniformArray(rand, nIn * nOut, -scale, scale), b: uniformArray(rand, nOut, -scale, scale) });
  }
  return layers;
}

export function randomLabels(rand: () => number, B: number, K: number): Uint8Array {
  const y = new Uint8Array(B);
  for (let i = 0; i < B; i++) y[i] = Math.floor(rand() * K);
  return y;
}
