// matmul_vec4: matmul.wgsl's contract (same FORMs, epilogues, Params and
// bindings; read its header) with 128-bit global and workgroup-memory loads,
// for real GPUs. rng.wgsl and matmul_common.wgsl are prepended by the backend.
//
// Shapes: as matmul.wgsl, and the dimension that is contiguous in memory for
// each operand must be a multiple of 4 (core/webgpu/kernels.ts checks
// this and uses matmul.wgsl otherwise):
//   FORM 0 (nn): K % 4 == 0 (rows of A), N % 4 == 0 (rows of B)
//   FORM 1 (tn): M % 4 == 0 (rows of A), N % 4 == 0 (rows of B)
//   FORM 2 (nt): K % 4 == 0 (rows of A and of B)
// M, K, N need not be multiples of the tile: out-of-range vec4s read 0, stores
// outside M x N are skipped (C is written per element by store()).
//
// CSUM (column sums of op(B) into S, FORM 1): as matmul.wgsl, see matmul_common.wgsl.
//
// Bindings (group 0): 0 C, 1 S, 4 aux, 5 ids, 6 P from matmul_common.wgsl;
//   2 A   storage read  array<vec4<f32>>   see FORM
//   3 B   storage read  array<vec4<f32>>   see FORM
//
// Workgroup: WG_X x WG_Y invocations; each owns TM x TN outputs as
// (TM/4) x (TN/4) blocks of 4 x 4, interleaved: rows m0 + (p WG_Y + ty) 4 + i,
// columns n0 + (q WG_X + tx) 4 + j, so neighbouring invocations read
// neighbouring vec4s of workgroup memory (no bank conflicts). A workgroup
// covers BM = WG_Y TM rows by BN = WG_X TN columns; dispatch
// (ceil(N / BN), ceil(M / BM), 1). K is walked in slices of BK (multiple of
// 4) through two workgroup-memory buffers, k-major (As[k][m], Bs[k][n], rows
// padded by PAD vec4s): slice t+1 is fetched from storage into registers while
// slice t is multiplied, so there is one barrier per slice. Operands stored
// k-contiguous (A in nn/nt, B in nt) are read as 4 x 4 blocks (4 rows, one
// vec4 each) and transposed in registers.
// Tunables: overrides FORM, EPI, WG_X, WG_Y, BK, PAD; consts TM, TN (multiples
// of 4) and LA, LB (load units per invocation per slice, set by kernels.ts),
// specialised in the source with the `// unroll` loops unrolled (gpu.ts).

@group(0) @binding(2) var<storage, read> A: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> B: array<vec4<f32>>;

override FORM: u32 = 0u;
override WG_X: u32 = 16u;
override WG_Y: u32 = 16u;
override BK: u32 = 8u;
override PAD: u32 = 0u;
const TM: u32 = 8u;
const TN: u32 = 8u;
// Load units per invocation and slice: ceil(units / (WG_X WG_Y)), where a unit
// is one vec4 (direct) or one 4 x 4 block (transposed); see kernels.ts.
const LA: u32 = 1u;
const LB: u32 = 1u;

const TM4: u32 = TM / 4u;
const TN4: u32 = TN / 4u;
override BM4: u32 = WG_Y * TM4;
override BN4: u32 = WG_X * TN4;
override BK4: u32 = BK / 4u;
override SA4: u32 = BM4 + PAD;
override SB4: u32 = BN4 + PAD;

var<workgroup> As: array<vec4<f32>, 2u * BK * SA4>;
var<workgroup> Bs: array<vec4<f32>, 2u * BK * SB4>;

@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let tx = lid3.x;
  let ty = lid3.y;
  let lid = ty * WG_X + tx;
  let NT = WG_X * WG_Y;
  let M = P.M;
  let K = P.K;
  let N = P.N;
  let M4 = M / 4u;
  let K4 = K / 4u;
  let N4 = N / 4u;
  let m0 = wid.y * BM4 * 4u;
  let n0 = wid.x * BN4 * 4u;
  // Units per slice: direct operands BK rows of vec4s, transposed ones 4 x 4 blocks.
  let unitsA = select(BM4 * BK4, BM4 * BK, FORM == 1u);
  let unitsB = select(BN4 * BK4, BN4 * BK, FORM != 2u);

  var acc: array<vec4<f32>, TM * TN4>;
  // CSUM: column sums of op(B), in the first row of workgroup tiles (a workgroup-uniform branch).
  var cs: array<vec4<f32>, TN4>;
  let csum = CSUM && wid.y == 0u;
  var ra: array<vec4<f32>, LA * 4u>;
  var rb: array<vec4<f32>, LB * 4u>;

  let slices = (K + BK - 1u) / BK;
  // Slice 0 into registers.
  for (var t = 0u; t <= slices; t++) {
    let k0 = t * BK;
    if (t > 0u) {
      // Registers (slice t - 1) -> workgroup buffer (t - 1) % 2. That buffer was
      // last read two slices ago, before the barrier every invocation passed since.
      let sa = ((t - 1u) % 2u) * BK * SA4;
      let sb = ((t - 1u) % 2u) * BK * SB4;
      for (var r = 0u; r < LA; r++) { // unroll
        let u = lid + r * NT;
        if (u < unitsA) {
          if (FORM == 1u) {
            As[sa + (u / BM4) * SA4 + u % BM4] = ra[r * 4u];
          } else {
            let kq = u % BK4;
            let mq = u / BK4;
            let base = sa + kq * 4u * SA4 + mq;
            As[base] = vec4<f32>(ra[r * 4u].x, ra[r * 4u + 1u].x, ra[r * 4u + 2u].x, ra[r * 4u + 3u].x);
            As[base + SA4] = vec4<f32>(ra[r * 4u].y, ra[r * 4u + 1u].y, ra[r * 4u + 2u].y, ra[r * 4u + 3u].y);
            As[base + 2u * SA4] = vec4<f32>(ra[r * 4u].z, ra[r * 4u + 1u].z, ra[r * 4u + 2u].z, ra[r * 4u + 3u].z);
            As[base + 3u * SA4] = vec4<f32>(ra[r * 4u].w, ra[r * 4u + 1u].w, ra[r * 4u + 2u].w, ra[r * 4u + 3u].w);
          }
        }
      }
      for (var r = 0u; r < LB; r++) { // unroll
        let u = lid + r * NT;
        if (u < unitsB) {
          if (FORM != 2u) {
            Bs[sb + (u / BN4) * SB4 + u % BN4] = rb[r * 4u];
          } else {
            let kq = u % BK4;
            let nq = u / BK4;
            let base = sb + kq * 4u * SB4 + nq;
            Bs[base] = vec4<f32>(rb[r * 4u].x, rb[r * 4u + 1u].x, rb[r * 4u + 2u].x, rb[r * 4u + 3u].x);
            Bs[base + SB4] = vec4<f32>(rb[r * 4u].y, rb[r * 4u + 1u].y, rb[r * 4u + 2u].y, rb[r * 4u + 3u].y);
            Bs[base + 2u * SB4] = vec4<f32>(rb[r * 4u].z, rb[r * 4u + 1u].z, rb[r * 4u + 2u].z, rb[r * 4u + 3u].z);
            Bs[base + 3u * SB4] = vec4<f32>(rb[r * 4u].w, rb[r * 4u + 1u].w, rb[r * 4u + 2u].w, rb[r * 4u + 3u].w);
          }
        }
      }
      workgroupBarrier();
    }
    if (t < slices) {
      // Storage (slice t) -> registers, in flight while slice t - 1 is multiplied.
      for (var r = 0u; r < LA; r++) { // unroll
        let u = lid + r * NT;
        if (u < unitsA) {
          if (FORM == 1u) {
            // A is K x M: vec4 along m.
            let k = k0 + u / BM4;
            let mq = m0 / 4u + u % BM4;
            ra[r * 4u] = select(vec4<f32>(0.0), A[k * M4 + mq], k < K && mq < M4);
          } else {
            // A is M x K: rows m..m+3, one vec4 along k each.
            let kq = k0 / 4u + u % BK4;
            let m = m0 + (u / BK4) * 4u;
            let okk = kq < K4;
            ra[r * 4u] = select(vec4<f32>(0.0), A[m * K4 + kq], okk && m < M);
            ra[r * 4u + 1u] = select(vec4<f32>(0.0), A[(m + 1u) * K4 + kq], okk && m + 1u < M);
            ra[r * 4u + 2u] = select(vec4<f32>(0.0), A[(m + 2u) * K4 + kq], okk && m + 2u < M);
            ra[r * 4u + 3u] = select(vec4<f32>(0.0), A[(m + 3u) * K4 + kq], okk && m + 3u < M);
          }
        }
      }
      for (var r = 0u; r < LB; r++) { // unroll
        let u = lid + r * NT;
        if (u < unitsB) {
          if (FORM != 2u) {
            // B is K x N: vec4 along n.
            let k = k0 + u / BN4;
            let nq = n0 / 4u + u % BN4;
            rb[r * 4u] = select(vec4<f32>(0.0), B[k * N4 + nq], k < K && nq < N4);
          } else {
            // B is N x K: rows n..n+3, one vec4 along k each.
            let kq = k0 / 4u + u % BK4;
            let n = n0 + (u / BK4) * 4u;
            let okk = kq < K4;
            rb[r * 4u] = select(vec4<f32>(0.0), B[n * K4 + kq], okk && n < N);
            rb[r * 4u + 1u] = select(vec4<f32>(0.0), B[(n + 1u) * K4 + kq], okk && n + 1u < N);
            rb[r * 4u + 2u] = select(vec4<f32>(0.0), B[(n + 2u) * K4 + kq], okk && n + 2u < N);
            rb[r * 4u + 3u] = select(vec4<f32>(0.0), B[(n + 3u) * K4 + kq], okk && n + 3u < N);
          }
        }
      }
    }
    if (t > 0u) {
      let sa = ((t - 1u) % 2u) * BK * SA4 + ty;
      let sb = ((t - 1u) % 2u) * BK * SB4 + tx;
      for (var kk = 0u; kk < BK; kk++) {
        var a: array<vec4<f32>, TM4>;
        var b: array<vec4<f32>, TN4>;
        for (var p = 0u; p < TM4; p++) { // unroll
          a[p] = As[sa + kk * SA4 + p * WG_Y];
        }
        for (var q = 0u; q < TN4; q++) { // unroll
          b[q] = Bs[sb + kk * SB4 + q * WG_X];
        }
        for (var p = 0u; p < TM4; p++) { // unroll
          for (var q = 0u; q < TN4; q++) { // unroll
            acc[(p * 4u) * TN4 + q] = fma(vec4<f32>(a[p].x), b[q], acc[(p * 4u) * TN4 + q]);
            acc[(p * 4u + 1u) * TN4 + q] = fma(vec4<f32>(a[p].y), b[q], acc[(p * 4u + 1u) * TN4 + q]);
            acc[(p * 4u + 2u) * TN4 + q] = fma(vec4<f32>(a[p].z), b[q], acc[(p * 4u + 2u) * TN4 + q]);
            acc[(p * 4u + 3u) * TN4 + q] = fma(vec4<f32>(a[p].w), b[q], acc[(p * 4u + 3u) * TN4 + q]);
          }
        }
        if (csum) {
          for (var q = 0u; q < TN4; q++) { // unroll
            cs[q] += b[q];
          }
        }
      }
    }
  }

  for (var p = 0u; p < TM4; p++) { // unroll
    for (var i = 0u; i < 4u; i++) { // unroll
      let m = m0 + (p * WG_Y + ty) * 4u + i;
      for (var q = 0u; q < TN4; q++) { // unroll
        let n = n0 + (q * WG_X + tx) * 4u;
        let v = acc[(p * 4u + i) * TN4 + q];
        store(m, n, v.x);
        store(m, n + 1u, v.y);
        store(m, n + 2u, v.z);
        store(m, n + 3u, v.w);
      }
    }
  }
  if (csum && ty == 0u) {
    for (var q = 0u; q < TN4; q++) { // unroll
      let n = n0 + (q * WG_X + tx) * 4u;
      storeColsum(n, cs[q].x);
      storeColsum(n + 1u, cs[q].y);
      storeColsum(n + 2u, cs[q].z);
      storeColsum(n + 3u, cs[q].w);
    }
  }
}
