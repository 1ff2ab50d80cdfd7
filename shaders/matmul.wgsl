// matmul: C = epilogue(op(A) op(B)) in the three forms the DBN needs, with no
// transpose ever materialised.
//
// Shapes (row-major f32): op(A) is M x K, op(B) is K x N, C and S are M x N.
//   FORM 0 (nn): A is M x K, B is K x N      C = A B       forward:  h = v W
//   FORM 1 (tn): A is K x M, B is K x N      C = A^T B     gradient: dW = v^T h
//   FORM 2 (nt): A is M x K, B is N x K      C = A B^T     backward: v = s W^T, delta W^T
// Epilogues (override EPI), per output element, acc = (op(A) op(B))[m, n]:
//   0: C = alpha * acc + beta * C   (C is read only when beta != 0); with CSUM
//      (FORM 1) also S[n] = alpha * sum_k B[k, n] + beta * S[n] (matmul_common.wgsl)
//   1: C = sigmoid(acc + aux[n])                          bias + sigmoid
//   2: C = sigmoid(acc + aux[n]); S = u < C ? 1 : 0       + Bernoulli sample, u = rng_uniform(seed, iteration, ids[m], n)
//   3: C = acc + aux[n]                                   bias only (softmax logits)
//   4: C = acc * aux[m, n] * (1 - aux[m, n])              sigmoid backprop delta, aux = activations
//
// Source: rng.wgsl and matmul_common.wgsl (Params, C/S/aux/ids/P, the
// epilogues) are prepended by the backend. matmul_vec4.wgsl is the same
// contract with 128-bit loads for shapes whose contiguous dimensions are
// multiples of 4; this scalar kernel serves every other shape and the CPU
// emulators.
//
// Bindings (group 0, fixed order: outputs, inputs, uniforms):
//   0 C   storage read_write  M x N
//   1 S   storage read_write  M x N samples (EPI 2), N column sums (CSUM); any buffer otherwise
//   2 A   storage read        see FORM
//   3 B   storage read        see FORM
//   4 aux storage read        N bias (EPI 1-3), M x N activations (EPI 4); any buffer otherwise
//   5 ids storage read        M u32 example ids (EPI 2); any buffer otherwise
//   6 P   uniform             Params
//
// Workgroup: WG_X x WG_Y invocations; each computes a TM x TN block of C, so a
// workgroup covers BM = WG_Y * TM rows by BN = WG_X * TN columns; dispatch
// (ceil(N / BN), ceil(M / BM), 1). With SHARED, K is walked in steps of BK
// through workgroup-memory tiles (real GPUs); without, every invocation reads
// its operands straight from storage with no barrier (faster on CPU
// emulation such as lavapipe and SwiftShader, where barriers are costly).
// Any M, K, N >= 1 works: out-of-range loads read 0, out-of-range stores are skipped.

@group(0) @binding(2) var<storage, read> A: array<f32>;
@group(0) @binding(3) var<storage, read> B: array<f32>;

override FORM: u32 = 0u;
override WG_X: u32 = 16u;
override WG_Y: u32 = 16u;
override BK: u32 = 16u;
override SHARED: bool = true;
// The register block. WGSL sizes function-scope arrays with const expressions
// only, so these two are consts that the backend specialises in the source
// (core/webgpu/gpu.ts, `consts`); both must be multiples of 4. Loops
// marked `// unroll` are unrolled there too, so the accumulators are indexed
// by constants and stay in registers.
const TM: u32 = 4u;
const TN: u32 = 4u;

const TN4: u32 = TN / 4u;
const TM4: u32 = TM / 4u;
override BM: u32 = WG_Y * TM;
override BN: u32 = WG_X * TN;
// Tile rows are padded by one vec4 to spread the k-strided stores over banks.
override SA: u32 = BM + 4u;
override SB: u32 = BN + 4u;

var<workgroup> As: array<vec4<f32>, BK * SA / 4u>;
var<workgroup> Bs: array<vec4<f32>, BK * SB / 4u>;

// op(A)[m, k], 0 outside.
fn loadA(m: u32, k: u32) -> f32 {
  if (m >= P.M || k >= P.K) { return 0.0; }
  if (FORM == 1u) { return A[k * P.M + m]; }
  return A[m * P.K + k];
}

// op(B)[k, n], 0 outside.
fn loadB(k: u32, n: u32) -> f32 {
  if (n >= P.N || k >= P.K) { return 0.0; }
  if (FORM == 2u) { return B[n * P.K + k]; }
  return B[k * P.N + n];
}

@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let tx = lid3.x;
  // With WG_Y == 1 this folds to 0, so row indices are uniform over the
  // workgroup and CPU emulators load A once per row instead of per invocation.
  let ty = select(lid3.y, 0u, WG_Y == 1u);
  let lid = ty * WG_X + tx;
  let NT = WG_X * WG_Y;
  let m0 = wid.y * BM;
  let n0 = wid.x * BN;
  var acc: array<vec4<f32>, TM * TN4>;
  // CSUM: column sums of op(B), in the first row of workgroup tiles (a workgroup-uniform branch).
  var cs: array<vec4<f32>, TN4>;
  let csum = CSUM && wid.y == 0u;

  if (SHARED) {
    for (var k0 = 0u; k0 < P.K; k0 += BK) {
      // Stage op(A)[m0.., k0..] and op(B)[k0.., n0..] k-major; consecutive
      // invocations read consecutive addresses of whichever index is contiguous.
      for (var idx = lid; idx < BM * BK; idx += NT) {
        var mm: u32; var kk: u32;
        if (FORM == 1u) { mm = idx % BM; kk = idx / BM; } else { kk = idx % BK; mm = idx / BK; }
        let at = kk * SA + mm;
        As[at / 4u][at % 4u] = loadA(m0 + mm, k0 + kk);
      }
      for (var idx = lid; idx < BN * BK; idx += NT) {
        var nn: u32; var kk: u32;
        if (FORM == 2u) { kk = idx % BK; nn = idx / BK; } else { nn = idx % BN; kk = idx / BN; }
        let at = kk * SB + nn;
        Bs[at / 4u][at % 4u] = loadB(k0 + kk, n0 + nn);
      }
      workgroupBarrier();
      for (var kk = 0u; kk < BK; kk++) {
        var a: array<vec4<f32>, TM4>;
        var b: array<vec4<f32>, TN4>;
        for (var p = 0u; p < TM4; p++) { // unroll
          a[p] = As[(kk * SA + ty * TM) / 4u + p];
        }
        for (var q = 0u; q < TN4; q++) { // unroll
          b[q] = Bs[(kk * SB + tx * TN) / 4u + q];
        }
        for (var i = 0u; i < TM; i++) { // unroll
          for (var q = 0u; q < TN4; q++) { // unroll
            acc[i * TN4 + q] = fma(vec4<f32>(a[i / 4u][i % 4u]), b[q], acc[i * TN4 + q]);
          }
        }
        if (csum) {
          for (var q = 0u; q < TN4; q++) { // unroll
            cs[q] += b[q];
          }
        }
      }
      workgroupBarrier();
    }
  } else {
    for (var k = 0u; k < P.K; k++) {
      var b: array<vec4<f32>, TN4>;
      for (var q = 0u; q < TN4; q++) { // unroll
        let n = n0 + tx * TN + q * 4u;
        b[q] = vec4<f32>(loadB(k, n), loadB(k, n + 1u), loadB(k, n + 2u), loadB(k, n + 3u));
      }
      if (csum) {
        for (var q = 0u; q < TN4; q++) { // unroll
          cs[q] += b[q];
        }
      }
      for (var i = 0u; i < TM; i++) { // unroll
        let ai = vec4<f32>(loadA(m0 + ty * TM + i, k));
        for (var q = 0u; q < TN4; q++) { // unroll
          acc[i * TN4 + q] = fma(ai, b[q], acc[i * TN4 + q]);
        }
      }
    }
  }

  for (var i = 0u; i < TM; i++) { // unroll
    for (var j = 0u; j < TN; j++) { // unroll
      store(m0 + ty * TM + i, n0 + tx * TN + j, acc[i * TN4 + j / 4u][j % 4u]);
    }
  }
  if (csum && ty == 0u) {
    for (var j = 0u; j < TN; j++) { // unroll
      storeColsum(n0 + tx * TN + j, cs[j / 4u][j % 4u]);
    }
  }
}
