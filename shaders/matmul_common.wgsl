// matmul_common: a library (no entry point) shared by matmul.wgsl and
// matmul_vec4.wgsl, prepended to them by the backend (KernelSpec.libs, after
// rng.wgsl): the Params uniform, the bindings of the outputs, the epilogue's
// inputs and the uniforms (C, S, aux, ids, P; see matmul.wgsl's header for
// their meaning), the epilogues (override EPI) and a stable sigmoid.
// The kernels declare A and B themselves (f32 or vec4<f32> elements).
//
// CSUM (override, FORM 1 with EPI 0 only; kernels.ts checks): the kernel also
// writes the column sums of op(B) over k into S, as the epilogue does C:
//   S[n] = alpha * sum_k op(B)[k, n] + beta * S[n]      (S is read only when beta != 0)
// so the bias gradient of backprop (db = sum over rows of delta, with
// dW = a^T delta) and CD-1's dc (sum h0 - sum h1) come out of the dW product
// with no colsum dispatch. Written by the invocations of the first row of
// workgroup tiles (wid.y == 0, ty == 0), which read every k of their columns.

struct Params {
  M: u32,
  K: u32,
  N: u32,
  seed: u32,
  iteration: u32,
  alpha: f32,
  beta: f32,
  pad: u32,
}

@group(0) @binding(0) var<storage, read_write> C: array<f32>;
@group(0) @binding(1) var<storage, read_write> S: array<f32>;
@group(0) @binding(4) var<storage, read> aux: array<f32>;
@group(0) @binding(5) var<storage, read> ids: array<u32>;
@group(0) @binding(6) var<uniform> P: Params;

override EPI: u32 = 0u;
override CSUM: bool = false;

// Stable for any x (sigmoid(+-400) gives 1 and 0, never inf or NaN).
fn sigmoid(x: f32) -> f32 {
  if (x >= 0.0) { return 1.0 / (1.0 + exp(-x)); }
  let e = exp(x);
  return e / (1.0 + e);
}

// Applies the epilogue to one element of C; skips elements outside M x N.
fn store(m: u32, n: u32, v: f32) {
  if (m >= P.M || n >= P.N) { return; }
  let at = m * P.N + n;
  switch EPI {
    case 1u: { C[at] = sigmoid(v + aux[n]); }
    case 2u: {
      let h = sigmoid(v + aux[n]);
      C[at] = h;
      S[at] = select(0.0, 1.0, rng_uniform(P.seed, P.iteration, ids[m], n) < h);
    }
    case 3u: { C[at] = v + aux[n]; }
    case 4u: { let y = aux[at]; C[at] = v * y * (1.0 - y); }
    default: {
      var r = P.alpha * v;
      if (P.beta != 0.0) { r += P.beta * C[at]; }
      C[at] = r;
    }
  }
}

// CSUM's store: one column sum of op(B); skips n outside N.
fn storeColsum(n: u32, v: f32) {
  if (n >= P.N) { return; }
  var r = P.alpha * v;
  if (P.beta != 0.0) { r += P.beta * S[n]; }
  S[n] = r;
}
