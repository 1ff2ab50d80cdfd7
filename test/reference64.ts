/**
 * The one float64 reference both backends' tests compare with (CPU:
 * test/core/cpu/, WebGPU: test/webgpu/, under Vitest, Deno and Chromium
 * alike, so no test framework here), and the one `expectClose`.
 *
 * Shape legend: B = rows (examples), K = classes; op(A) is M x K and op(B)
 * K x N for matmul. Every matrix is row-major.
 */

export type MatmulForm = 'nn' | 'tn' | 'nt';

/**
 * op(A) op(B) in float64 ('tn': A is K x M, 'nt': B is N x K), and per
 * element sum_k |op(A)[m,k] op(B)[k,n]|: the scale of its rounding error.
 */
export function matmul64(form: MatmulForm, A: ArrayLike<number>, B: ArrayLike<number>, M: number, K: number, N: number): { C: Float64Array; mag: Float64Array } {
  const C = new Float64Array(M * N);
  const mag = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let k = 0; k < K; k++) {
      const a = form === 'tn' ? A[k * M + m]! : A[m * K + k]!;
      if (a === 0) continue;
      const aa = Math.abs(a);
      const row = m * N;
      for (let n = 0; n < N; n++) {
        const b = form === 'nt' ? B[n * K + k]! : B[k * N + n]!;
        C[row + n]! += a * b;
        mag[row + n]! += aa * Math.abs(b);
      }
    }
  }
  return { C, mag };
}

export function sigmoid64(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}

/** Row-wise softmax of B x K logits: probabilities, log-probabilities, and each row's argmax. */
export function softmax64(z: ArrayLike<number>, B: number, K: number): { probs: Float64Array; logp: Float64Array; argmax: Uint32Array } {
  const probs = new Float64Array(B * K);
  const logp = new Float64Array(B * K);
  const argmax = new Uint32Array(B);
  for (let i = 0; i < B; i++) {
    let mx = -Infinity;
    for (let k = 0; k < K; k++) {
      if (z[i * K + k]! > mx) {
        mx = z[i * K + k]!;
        argmax[i] = k;
      }
    }
    let s = 0;
    for (let k = 0; k < K; k++) s += Math.exp(z[i * K + k]! - mx);
    for (let k = 0; k < K; k++) {
      logp[i * K + k] = z[i * K + k]! - mx - Math.log(s);
      probs[i * K + k] = Math.exp(logp[i * K + k]!);
    }
  }
  return { probs, logp, argmax };
}

let replayHint = '';

/** Text added to every expectClose failure, e.g. how to replay this run's random inputs ("CPU_TEST_SEED=123"). */
export function setReplayHint(hint: string): void {
  replayHint = hint;
}

/**
 * Throws naming the first element of `got` that is not within `tol(i)` of
 * `want` (a NaN or infinity in `got` where `want` has none is never close:
 * an unwritten, poisoned element shows).
 */
export function expectClose(what: string, got: ArrayLike<number>, want: ArrayLike<number>, tol: (i: number) => number): void {
  const hint = replayHint ? ` (${replayHint})` : '';
  if (got.length !== want.length) throw new Error(`${what}: ${got.length} values, expected ${want.length}${hint}`);
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!;
    const w = want[i]!;
    if (Object.is(g, w)) continue;
    const err = Math.abs(g - w);
    if (!(err <= tol(i))) {
      const why = Number.isFinite(g) ? `off by ${err.toExponential(2)}` : 'not written or not finite';
      throw new Error(`${what}[${i}] = ${g}, float64 reference ${w}, tolerance ${tol(i).toExponential(2)}: ${why}${hint}`);
    }
  }
}
