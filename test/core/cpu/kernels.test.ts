/**
 * Every CPU kernel against a float64 reference on fresh random inputs of
 * awkward sizes, outputs NaN-poisoned first so an unwritten element fails.
 * The matmul runs on both engines (TypeScript and WebAssembly SIMD).
 *
 * Tolerances: matmul |C - C64| <= (K + 2) u · sum_k |a b| (u = 2^-24, the
 * worst-case bound of float32 summation in any order); elementwise kernels
 * computed in float64 and rounded once: 2 u relative; sums accumulated in
 * float64: 2 u of the sum of magnitudes.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import {
  biasSigmoid,
  cd1Stats,
  columnDiffSums,
  columnSums,
  sampleBernoulli,
  sigmoid,
  sigmoidBackprop,
  softmax,
  softmaxCrossEntropy,
  type MatmulForm,
} from '../../../core/cpu/index.ts';
import { uniform } from '../../../core/rng.ts';
import {
  bitsEqual,
  expectClose,
  generator,
  matmul64,
  poisoned,
  randomLabels,
  SEED,
  sigmoid64,
  softmax64,
  testEngines,
  U32,
  uniformArray,
  type NamedEngine,
} from './reference.ts';

const rand = generator(SEED);

/** M x K x N, none a multiple of the 4x8 and 2x4 tiles except the DBN's own shapes. */
const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [7, 13, 5],
  [2, 3, 9],
  [5, 1, 7],
  [9, 6, 1],
  [3, 0, 4],
  [33, 100, 17],
  [100, 784, 500],
  [784, 100, 500],
  [100, 10, 2000],
  [101, 203, 37],
];

let engines: NamedEngine[] = [];
beforeAll(async () => {
  engines = await testEngines();
});

describe('matmul', () => {
  for (const form of ['nn', 'tn', 'nt'] as MatmulForm[]) {
    for (const [M, K, N] of SHAPES) {
      it(`${form} ${M}x${K}x${N} matches float64 on every engine`, () => {
        const A = uniformArray(rand, M * K);
        const B = uniformArray(rand, K * N);
        const { C: want, mag } = matmul64(form, A, B, M, K, N);
        for (const { name, engine } of engines) {
          const [a, b, c] = engine.workspace.reserve([M * K, K * N, M * N]) as [Float32Array, Float32Array, Float32Array];
          a.set(A);
          b.set(B);
          engine.matmul(form, a, b, c, M, K, N);
          expectClose(`${name} ${form} C`, c, want, (i) => (K + 2) * U32 * mag[i]! + 1e-30);
          const first = c.slice();
          c.fill(NaN);
          engine.matmul(form, a, b, c, M, K, N);
          expect(bitsEqual(first, c), `${name} ${form}: same inputs, same bits`).toBe(true);
        }
      });
    }
  }

  it('SIMD engine rejects operands outside its memory, with what to do', () => {
    const simd = engines[1]!.engine;
    expect(() => simd.matmul('nn', new Float32Array(4), new Float32Array(4), new Float32Array(4), 2, 2, 2)).toThrow(/workspace\.reserve/);
  });

  it('rejects buffers too small for the shape', () => {
    for (const { engine } of engines) {
      const [a, b, c] = engine.workspace.reserve([6, 6, 3]) as [Float32Array, Float32Array, Float32Array];
      expect(() => engine.matmul('nn', a, b, c, 2, 3, 2)).toThrow(/C has 3 elements, the kernel needs 4/);
    }
  });
});

describe('biasSigmoid', () => {
  it('matches float64 on 37x53, within 2u relative', () => {
    const [M, N] = [37, 53];
    const Z = uniformArray(rand, M * N, -12, 12);
    const bias = uniformArray(rand, N, -3, 3);
    const Y = poisoned(M * N);
    biasSigmoid(Z, bias, Y, M, N);
    const want = Array.from(Z, (z, i) => sigmoid64(z + bias[i % N]!));
    expectClose('Y', Y, want, (i) => 2 * U32 * want[i]! + 1e-45);
  });

  it('is exact and finite at the extremes: ±400, ±1e30, ±Infinity', () => {
    const Z = Float32Array.from([400, -400, 1e30, -1e30, Infinity, -Infinity, 0, 88.7, -88.7, -104]);
    const Y = poisoned(Z.length);
    biasSigmoid(Z, new Float32Array(Z.length), Y, 1, Z.length);
    expect(Array.from(Y.subarray(0, 7))).toEqual([1, 0, 1, 0, 1, 0, 0.5]);
    expect(Y[7]).toBe(1);
    expect(Y[8]).toBe(Math.fround(sigmoid64(Z[8]!))); // a float32 subnormal, rounded once from float64
    expect(Y.every((y) => Number.isFinite(y) && y >= 0 && y <= 1)).toBe(true);
    expect(sigmoid(-745)).toBeGreaterThanOrEqual(0);
    expect(sigmoid(1e308)).toBe(1);
    expect(sigmoid(-1e308)).toBe(0);
  });

  it('may write in place', () => {
    const Z = uniformArray(rand, 3 * 7, -5, 5);
    const bias = uniformArray(rand, 7);
    const Y = poisoned(Z.length);
    biasSigmoid(Z, bias, Y, 3, 7);
    biasSigmoid(Z, bias, Z, 3, 7);
    expect(bitsEqual(Y, Z)).toBe(true);
  });
});

describe('sampleBernoulli', () => {
  it('draws exactly uniform(seed, iteration, exampleIds[i], j) < P[i][j], the same draws as rng.ts', () => {
    const [M, N] = [13, 29];
    const P = uniformArray(rand, M * N, 0, 1);
    P[0] = 0;
    P[1] = 1;
    const ids = Uint32Array.from({ length: M }, () => Math.floor(rand() * 2 ** 32));
    const seed = Math.floor(rand() * 2 ** 32);
    const S = poisoned(M * N);
    sampleBernoulli(P, S, M, N, seed, 17, ids);
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        expect(S[i * N + j], `S[${i}][${j}]`).toBe(uniform(seed, 17, ids[i]!, j) < P[i * N + j]! ? 1 : 0);
      }
    }
    expect(S[0]).toBe(0);
    expect(S[1]).toBe(1);
  });

  it('keeps the mean of the probabilities (10^5 draws of p = 0.3 within 5 sigma)', () => {
    const n = 100000;
    const P = new Float32Array(n).fill(0.3);
    const S = poisoned(n);
    sampleBernoulli(P, S, 1000, 100, 7, 0, Uint32Array.from({ length: 1000 }, (_, i) => i));
    const mean = S.reduce((a, b) => a + b, 0) / n;
    expect(Math.abs(mean - 0.3)).toBeLessThan(5 * Math.sqrt((0.3 * 0.7) / n));
  });
});

describe('column sums and CD-1 statistics', () => {
  it('columnSums matches float64 on 57x31', () => {
    const [M, N] = [57, 31];
    const A = uniformArray(rand, M * N);
    const out = poisoned(N);
    columnSums(A, M, N, out);
    const want = new Float64Array(N);
    const mag = new Float64Array(N);
    for (let i = 0; i < M * N; i++) {
      want[i % N]! += A[i]!;
      mag[i % N]! += Math.abs(A[i]!);
    }
    expectClose('colsum', out, want, (j) => 2 * U32 * mag[j]!);
  });

  it('columnDiffSums returns sum of squares and writes column sums of X - Y', () => {
    const [M, N] = [19, 23];
    const X = uniformArray(rand, M * N, 0, 1);
    const Y = uniformArray(rand, M * N, 0, 1);
    const out = poisoned(N);
    const sq = columnDiffSums(X, Y, M, N, out);
    const want = new Float64Array(N);
    let sq64 = 0;
    for (let i = 0; i < M * N; i++) {
      const d = X[i]! - Y[i]!;
      want[i % N]! += d;
      sq64 += d * d;
    }
    expectClose('db', out, want, () => 2 * U32 * M);
    expect(Math.abs(sq - sq64)).toBeLessThanOrEqual(1e-12 * sq64);
  });

  it('cd1Stats matches v0ᵀh0 - v1ᵀh1, sum(v0 - v1), sum(h0 - h1) and the reconstruction error in float64', () => {
    const [B, V, H] = [11, 17, 9];
    const v0 = uniformArray(rand, B * V, 0, 1);
    const v1 = uniformArray(rand, B * V, 0, 1);
    const h0 = uniformArray(rand, B * H, 0, 1);
    const h1 = uniformArray(rand, B * H, 0, 1);
    const [dW, db, dc] = [poisoned(V * H), poisoned(V), poisoned(H)];
    const err = cd1Stats(v0, h0, v1, h1, B, V, H, dW, db, dc);
    const want = new Float64Array(V * H);
    for (let i = 0; i < B; i++) {
      for (let v = 0; v < V; v++) {
        for (let h = 0; h < H; h++) want[v * H + h]! += v0[i * V + v]! * h0[i * H + h]! - v1[i * V + v]! * h1[i * H + h]!;
      }
    }
    expectClose('dW', dW, want, () => 2 * (B + 2) * U32 * B);
    let err64 = 0;
    const db64 = new Float64Array(V);
    const dc64 = new Float64Array(H);
    for (let i = 0; i < B * V; i++) {
      db64[i % V]! += v0[i]! - v1[i]!;
      err64 += (v0[i]! - v1[i]!) ** 2;
    }
    for (let i = 0; i < B * H; i++) dc64[i % H]! += h0[i]! - h1[i]!;
    expectClose('db', db, db64, () => 2 * U32 * B);
    expectClose('dc', dc, dc64, () => 2 * U32 * B);
    expect(Math.abs(err - err64)).toBeLessThanOrEqual(1e-12 * err64);
  });
});

describe('softmax and cross-entropy', () => {
  it('softmax matches float64 on 23x10, rows sum to 1', () => {
    const [B, K] = [23, 10];
    const Z = uniformArray(rand, B * K, -20, 20);
    const P = poisoned(B * K);
    softmax(Z, P, B, K);
    const want = softmax64(Z, B, K).probs;
    expectClose('P', P, want, (i) => 4 * U32 * want[i]! + 1e-45);
  });

  it('softmaxCrossEntropy: loss, correct and delta = p - onehot match float64', () => {
    const [B, K] = [31, 7];
    const Z = uniformArray(rand, B * K, -8, 8);
    const labels = randomLabels(rand, B, K);
    const D = poisoned(B * K);
    const { loss, correct } = softmaxCrossEntropy(Z, labels, D, B, K);
    const p = softmax64(Z, B, K).probs;
    let loss64 = 0;
    let correct64 = 0;
    for (let i = 0; i < B; i++) {
      loss64 -= Math.log(p[i * K + labels[i]!]!);
      const row = Array.from(Z.subarray(i * K, i * K + K));
      if (row.indexOf(Math.max(...row)) === labels[i]) correct64++;
      p[i * K + labels[i]!]! -= 1;
    }
    expect(Math.abs(loss - loss64)).toBeLessThanOrEqual(1e-12 * loss64);
    expect(correct).toBe(correct64);
    expectClose('D', D, p, () => 4 * U32);
  });

  it('stays finite at logits ±1000: loss 2000 for a confident wrong answer, 0 for a right one', () => {
    const K = 4;
    const Z = Float32Array.from([1000, -1000, -1000, -1000, -1000, 1000, -1000, 1000, -1000, -1000, -1000, -1000]);
    const labels = Uint8Array.from([0, 0, 3]);
    const D = poisoned(3 * K);
    const { loss, correct } = softmaxCrossEntropy(Z, labels, D, 3, K);
    // row 0: right (loss 0); row 1: two tied at +1000, label at -1000 (loss 2000 + ln 2); row 2: all equal (ln 4)
    expect(loss).toBeCloseTo(2000 + Math.LN2 + Math.log(4), 9);
    expect(correct).toBe(1);
    expect(Array.from(D.subarray(0, 4))).toEqual([0, 0, 0, 0]);
    expect(Array.from(D.subarray(4, 8))).toEqual([-1, 0.5, 0, 0.5]);
    expectClose('D row 2', D.subarray(8), [0.25, 0.25, 0.25, -0.75], () => 0);
    const P = poisoned(3 * K);
    softmax(Z, P, 3, K);
    expect(P.every(Number.isFinite)).toBe(true);
    expect(P[0]).toBe(1);
  });

  it('rejects a label outside the classes', () => {
    expect(() => softmaxCrossEntropy(new Float32Array(4), Uint8Array.from([0, 2]), poisoned(4), 2, 2)).toThrow(/label 2 of row 1/);
  });
});

describe('sigmoidBackprop', () => {
  it('D = G ⊙ a ⊙ (1 - a) matches float64 on 41x19', () => {
    const [M, N] = [41, 19];
    const G = uniformArray(rand, M * N, -3, 3);
    const A = uniformArray(rand, M * N, 0, 1);
    const D = poisoned(M * N);
    sigmoidBackprop(G, A, D, M, N);
    const want = Array.from(G, (g, i) => g * A[i]! * (1 - A[i]!));
    expectClose('D', D, want, (i) => 2 * U32 * Math.abs(want[i]!) + 1e-45);
  });
});
