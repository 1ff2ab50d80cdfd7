/**
 * The CPU kernels in plain TypeScript: the reference every fast kernel (the
 * WebAssembly SIMD matmul here, the WGSL shaders) is tested against, and the
 * fallback where WebAssembly SIMD is missing.
 *
 * Shape legend: M, K, N = matmul dimensions (C is M x N, the sum runs over K);
 * B = rows (examples), V = visible units, H = hidden units, K = classes where
 * a kernel says so. Every matrix is a row-major Float32Array. A kernel writes
 * every element of its output and never reads it first, so outputs need no
 * clearing; unless a kernel says otherwise an output must not alias an input.
 */
import { mix } from '../rng.ts';

/** Which operands are transposed: C = A·B ('nn'), Aᵀ·B ('tn'), A·Bᵀ ('nt'). */
export type MatmulForm = 'nn' | 'tn' | 'nt';

/**
 * C (M x N) = op(A) · op(B), where for
 *   'nn': A is M x K, B is K x N   (forward:  Z = X W)
 *   'tn': A is K x M, B is K x N   (gradient: dW = Xᵀ D)
 *   'nt': A is M x K, B is N x K   (backprop: dX = D Wᵀ)
 * Transposes are read in place, never materialised. Products are summed in
 * float32 in increasing k order ('nn', 'tn') or in float64 ('nt').
 */
export function matmul(form: MatmulForm, A: Float32Array, B: Float32Array, C: Float32Array, M: number, K: number, N: number): void {
  checkLength('A', A, M * K);
  checkLength('B', B, K * N);
  checkLength('C', C, M * N);
  if (form === 'nt') return matmulNT(A, B, C, M, K, N);
  C.fill(0, 0, M * N);
  if (K === 0) return;
  // 'nn' and 'tn' differ only in A's strides: A(i, k) = A[i*sI + k*sK].
  const sI = form === 'nn' ? K : 1;
  const sK = form === 'nn' ? 1 : M;
  // Four rows of C at a time share each load of B's row k.
  let i = 0;
  for (; i + 4 <= M; i += 4) {
    const c0 = i * N;
    const c1 = c0 + N;
    const c2 = c1 + N;
    const c3 = c2 + N;
    for (let k = 0; k < K; k++) {
      const a0 = A[i * sI + k * sK]!;
      const a1 = A[(i + 1) * sI + k * sK]!;
      const a2 = A[(i + 2) * sI + k * sK]!;
      const a3 = A[(i + 3) * sI + k * sK]!;
      const b0 = k * N;
      for (let j = 0; j < N; j++) {
        const b = B[b0 + j]!;
        C[c0 + j]! += a0 * b;
        C[c1 + j]! += a1 * b;
        C[c2 + j]! += a2 * b;
        C[c3 + j]! += a3 * b;
      }
    }
  }
  for (; i < M; i++) {
    const c0 = i * N;
    for (let k = 0; k < K; k++) {
      const a = A[i * sI + k * sK]!;
      const b0 = k * N;
      for (let j = 0; j < N; j++) C[c0 + j]! += a * B[b0 + j]!;
    }
  }
}

function matmulNT(A: Float32Array, B: Float32Array, C: Float32Array, M: number, K: number, N: number): void {
  // One row of A against four rows of B at a time, dot products in float64.
  for (let i = 0; i < M; i++) {
    const a0 = i * K;
    let j = 0;
    for (; j + 4 <= N; j += 4) {
      const b0 = j * K;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      for (let k = 0; k < K; k++) {
        const a = A[a0 + k]!;
        s0 += a * B[b0 + k]!;
        s1 += a * B[b0 + K + k]!;
        s2 += a * B[b0 + 2 * K + k]!;
        s3 += a * B[b0 + 3 * K + k]!;
      }
      C[i * N + j] = s0;
      C[i * N + j + 1] = s1;
      C[i * N + j + 2] = s2;
      C[i * N + j + 3] = s3;
    }
    for (; j < N; j++) {
      const b0 = j * K;
      let s = 0;
      for (let k = 0; k < K; k++) s += A[a0 + k]! * B[b0 + k]!;
      C[i * N + j] = s;
    }
  }
}

/** The logistic function, exact to float64 rounding at any x (no overflow at ±400 or ±1e30). */
export function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

/** Y (M x N) = sigmoid(Z + bias) with bias (N) added to every row. Y may be Z. */
export function biasSigmoid(Z: Float32Array, bias: Float32Array, Y: Float32Array, M: number, N: number): void {
  checkLength('Z', Z, M * N);
  checkLength('bias', bias, N);
  checkLength('Y', Y, M * N);
  for (let i = 0; i < M; i++) {
    const r = i * N;
    for (let j = 0; j < N; j++) {
      const x = Z[r + j]! + bias[j]!;
      if (x >= 0) Y[r + j] = 1 / (1 + Math.exp(-x));
      else {
        const e = Math.exp(x);
        Y[r + j] = e / (1 + e);
      }
    }
  }
}

/** Y (M x N) = Z + bias (N) on every row (the output layer's logits). Y may be Z. */
export function addBias(Z: Float32Array, bias: Float32Array, Y: Float32Array, M: number, N: number): void {
  checkLength('Z', Z, M * N);
  checkLength('bias', bias, N);
  checkLength('Y', Y, M * N);
  for (let i = 0; i < M; i++) {
    const r = i * N;
    for (let j = 0; j < N; j++) Y[r + j] = Z[r + j]! + bias[j]!;
  }
}

/**
 * S (M x N) = Bernoulli(P): S[i][j] = uniform(seed, iteration, exampleIds[i], j) < P[i][j] ? 1 : 0,
 * with uniform() from rng.ts (the per-row prefix of its hash is hoisted; the
 * draws are identical). S may be P.
 */
export function sampleBernoulli(
  P: Float32Array,
  S: Float32Array,
  M: number,
  N: number,
  seed: number,
  iteration: number,
  exampleIds: Uint32Array,
): void {
  checkLength('P', P, M * N);
  checkLength('S', S, M * N);
  checkLength('exampleIds', exampleIds, M);
  const hSeed = mix((seed + 0x9e3779b9) >>> 0);
  const hIter = mix((hSeed ^ iteration) >>> 0);
  for (let i = 0; i < M; i++) {
    const hRow = mix((hIter ^ exampleIds[i]!) >>> 0);
    const r = i * N;
    for (let j = 0; j < N; j++) {
      const u = (mix((hRow ^ j) >>> 0) >>> 8) * (1 / 16777216);
      S[r + j] = u < P[r + j]! ? 1 : 0;
    }
  }
}

/** out (N) = column sums of A (M x N), summed in float64. */
export function columnSums(A: Float32Array, M: number, N: number, out: Float32Array): void {
  checkLength('A', A, M * N);
  checkLength('out', out, N);
  for (let j = 0; j < N; j++) {
    let s = 0;
    for (let i = 0; i < M; i++) s += A[i * N + j]!;
    out[j] = s;
  }
}

/**
 * out (N) = column sums of X - Y (both M x N), summed in float64; returns
 * sum((X - Y)^2). CD-1's db = sum(v0 - v1) with the reconstruction error,
 * and dc = sum(h0 - h1).
 */
export function columnDiffSums(X: Float32Array, Y: Float32Array, M: number, N: number, out: Float32Array): number {
  checkLength('X', X, M * N);
  checkLength('Y', Y, M * N);
  checkLength('out', out, N);
  let sq = 0;
  for (let j = 0; j < N; j++) {
    let s = 0;
    for (let i = 0; i < M; i++) {
      const d = X[i * N + j]! - Y[i * N + j]!;
      s += d;
      sq += d * d;
    }
    out[j] = s;
  }
  return sq;
}

/**
 * CD-1 statistics of one batch (B rows): dW (V x H) = v0ᵀ h0 - v1ᵀ h1,
 * db (V) = sum(v0 - v1), dc (H) = sum(h0 - h1); returns sum((v0 - v1)^2).
 * The reference composition of the kernels above.
 */
export function cd1Stats(
  v0: Float32Array,
  h0: Float32Array,
  v1: Float32Array,
  h1: Float32Array,
  B: number,
  V: number,
  H: number,
  dW: Float32Array,
  db: Float32Array,
  dc: Float32Array,
): number {
  checkLength('dW', dW, V * H);
  const neg = new Float32Array(V * H);
  matmul('tn', v0, h0, dW, V, B, H);
  matmul('tn', v1, h1, neg, V, B, H);
  for (let i = 0; i < V * H; i++) dW[i] = dW[i]! - neg[i]!;
  columnDiffSums(h0, h1, B, H, dc);
  return columnDiffSums(v0, v1, B, V, db);
}

/** P (B x K) = softmax of each row of the logits Z (B x K), max-subtracted. P may be Z. */
export function softmax(Z: Float32Array, P: Float32Array, B: number, K: number): void {
  checkLength('Z', Z, B * K);
  checkLength('P', P, B * K);
  for (let i = 0; i < B; i++) {
    const r = i * K;
    let max = -Infinity;
    for (let j = 0; j < K; j++) if (Z[r + j]! > max) max = Z[r + j]!;
    let sum = 0;
    for (let j = 0; j < K; j++) sum += Math.exp(Z[r + j]! - max);
    const inv = 1 / sum;
    for (let j = 0; j < K; j++) P[r + j] = Math.exp(Z[r + j]! - max) * inv;
  }
}

/** Loss and accuracy of a batch under softmax cross-entropy. */
export interface SoftmaxLoss {
  /** sum over rows of -log p[label], from the log-sum-exp (finite even when p rounds to 0) */
  loss: number;
  /** rows whose first largest logit is the label's */
  correct: number;
}

/**
 * Softmax cross-entropy of the logits Z (B x K) against labels (B), and the
 * output delta D (B x K) = softmax(Z) - onehot(label), the gradient of the
 * summed loss with respect to Z. D may be Z.
 */
export function softmaxCrossEntropy(Z: Float32Array, labels: Uint8Array, D: Float32Array, B: number, K: number): SoftmaxLoss {
  checkLength('Z', Z, B * K);
  checkLength('labels', labels, B);
  checkLength('D', D, B * K);
  let loss = 0;
  let correct = 0;
  for (let i = 0; i < B; i++) {
    const r = i * K;
    const label = labels[i]!;
    if (label >= K) throw new RangeError(`label ${label} of row ${i} is not a class of a ${K}-way softmax`);
    let max = -Infinity;
    let arg = 0;
    for (let j = 0; j < K; j++) {
      if (Z[r + j]! > max) {
        max = Z[r + j]!;
        arg = j;
      }
    }
    if (arg === label) correct++;
    let sum = 0;
    for (let j = 0; j < K; j++) sum += Math.exp(Z[r + j]! - max);
    loss += Math.log(sum) - (Z[r + label]! - max);
    const inv = 1 / sum;
    for (let j = 0; j < K; j++) D[r + j] = Math.exp(Z[r + j]! - max) * inv - (j === label ? 1 : 0);
  }
  return { loss, correct };
}

/**
 * Backprop through a sigmoid layer: D (M x N) = G ⊙ A ⊙ (1 - A), where G is
 * the gradient with respect to the layer's output A = sigmoid(Z) and D the
 * gradient with respect to Z. D may be G.
 */
export function sigmoidBackprop(G: Float32Array, A: Float32Array, D: Float32Array, M: number, N: number): void {
  checkLength('G', G, M * N);
  checkLength('A', A, M * N);
  checkLength('D', D, M * N);
  const n = M * N;
  for (let i = 0; i < n; i++) {
    const a = A[i]!;
    D[i] = G[i]! * a * (1 - a);
  }
}

/** Y = -X elementwise over the first n values. Y may be X. */
export function negate(X: Float32Array, Y: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) Y[i] = -X[i]!;
}

function checkLength(name: string, a: { length: number }, need: number): void {
  if (a.length < need) throw new RangeError(`${name} has ${a.length} elements, the kernel needs ${need}`);
}
