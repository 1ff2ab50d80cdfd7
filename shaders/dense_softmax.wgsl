// dense_softmax: the MLP's output layer in one dispatch: the logits
// Z = X W + bias of a small layer (K classes), then softmax_xent.wgsl's two
// modes on each row, so the logits never go through memory:
//   MODE 0: Pr[m, k] = softmax(Z[m, :])[k]                               predict
//   MODE 1: Pr[m, k] = softmax(Z[m, :])[k] - (k == labels[m] ? 1 : 0)    delta of the summed loss w.r.t. Z
//           stats[2m] = -log softmax(Z[m, :])[labels[m]]                 (log-sum-exp, no overflow)
//           stats[2m + 1] = 1 if the first argmax of Z[m, :] is labels[m], else 0
// CPU twin: core/cpu's matmul('nn') + bias, then softmaxCrossEntropy (MODE 1)
// or the softmax of predict (MODE 0); the float64 reference is
// test/webgpu/reference.ts (matmul64 + softmax64).
//
// Shapes (row-major f32): X is M x NIN, W is NIN x K, bias is K, Pr is M x K,
// stats is M x 2, labels M u32. K <= KMAX.
//
// Bindings (group 0, fixed order: outputs, inputs, uniforms):
//   0 Pr     storage read_write  M x K
//   1 stats  storage read_write  M x 2 (MODE 1; any buffer otherwise)
//   2 X      storage read        M x NIN activations of the last hidden layer
//   3 W      storage read        NIN x K
//   4 bias   storage read        K
//   5 labels storage read        M u32 class indices (MODE 1; any buffer otherwise)
//   6 P      uniform             Params
//
// Workgroup: WG invocations (a power of two) per row m: invocation t sums
// X[m, i] W[i, :] over i = t, t + WG, ... into KMAX registers, then one tree
// reduction in workgroup memory (log2 WG barriers for all K at once) and
// invocation 0 finishes the row. Dispatch (min(M, 65535), ceil(M / 65535), 1).
// Tunables: overrides MODE, WG; const KMAX (the register count, specialised
// in the source by kernels.ts, `// unroll` loops unrolled by gpu.ts).

struct Params {
  M: u32,
  NIN: u32,
  K: u32,
  pad: u32,
}

@group(0) @binding(0) var<storage, read_write> Pr: array<f32>;
@group(0) @binding(1) var<storage, read_write> stats: array<f32>;
@group(0) @binding(2) var<storage, read> X: array<f32>;
@group(0) @binding(3) var<storage, read> W: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read> labels: array<u32>;
@group(0) @binding(6) var<uniform> P: Params;

override MODE: u32 = 0u;
override WG: u32 = 64u;
const KMAX: u32 = 16u;

var<workgroup> red: array<f32, WG * KMAX>;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = lid3.x;
  let m = wid.y * nwg.x + wid.x;
  // Every invocation of a workgroup takes the same branch: barriers stay uniform.
  let live = m < P.M;
  let K = P.K;
  var acc: array<f32, KMAX>;
  if (live) {
    let row = m * P.NIN;
    for (var i = t; i < P.NIN; i += WG) {
      let x = X[row + i];
      let w = i * K;
      for (var k = 0u; k < KMAX; k++) { // unroll
        if (k < K) { acc[k] = fma(x, W[w + k], acc[k]); }
      }
    }
  }
  for (var k = 0u; k < KMAX; k++) { // unroll
    red[t * KMAX + k] = acc[k];
  }
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (t < s) {
      for (var k = 0u; k < KMAX; k++) { // unroll
        red[t * KMAX + k] += red[(t + s) * KMAX + k];
      }
    }
    workgroupBarrier();
  }
  if (!live || t != 0u) { return; }
  let out = m * K;
  var z: array<f32, KMAX>;
  var mx = red[0] + bias[0];
  var arg = 0u;
  for (var k = 0u; k < KMAX; k++) { // unroll
    if (k < K) {
      z[k] = red[k] + bias[k];
      if (z[k] > mx) { mx = z[k]; arg = k; }
    }
  }
  var sum = 0.0;
  for (var k = 0u; k < KMAX; k++) { // unroll
    if (k < K) { sum += exp(z[k] - mx); }
  }
  let inv = 1.0 / sum;
  if (MODE == 1u) {
    let label = labels[m];
    var zl = 0.0;
    for (var k = 0u; k < KMAX; k++) { // unroll
      if (k < K) {
        Pr[out + k] = exp(z[k] - mx) * inv - select(0.0, 1.0, k == label);
        if (k == label) { zl = z[k]; }
      }
    }
    stats[2u * m] = log(sum) - (zl - mx);
    stats[2u * m + 1u] = select(0.0, 1.0, arg == label);
  } else {
    for (var k = 0u; k < KMAX; k++) { // unroll
      if (k < K) { Pr[out + k] = exp(z[k] - mx) * inv; }
    }
  }
}
