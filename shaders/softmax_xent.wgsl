// softmax_xent: softmax over each row of logits, with the cross-entropy loss,
// the hit count and the output delta of backprop.
//   MODE 0: Pr[m, k] = softmax(Z[m, :])[k]                               predict
//   MODE 1: Pr[m, k] = softmax(Z[m, :])[k] - (k == labels[m] ? 1 : 0)    delta of the summed loss w.r.t. Z
//           stats[2m] = -log softmax(Z[m, :])[labels[m]]                 (log-sum-exp, no overflow)
//           stats[2m + 1] = 1 if the first argmax of Z[m, :] is labels[m], else 0
//
// Bindings (group 0, fixed order: outputs, inputs, uniforms):
//   0 Pr     storage read_write  M x K
//   1 stats  storage read_write  M x 2 (MODE 1; any buffer otherwise)
//   2 Z      storage read        M x K logits
//   3 labels storage read        M u32 class indices (MODE 1; any buffer otherwise)
//   4 P      uniform             Params
//
// Workgroup: WG invocations in x, one row each (K is the class count, small);
// dispatch (ceil(M / WG), 1, 1).

struct Params {
  M: u32,
  K: u32,
  pad0: u32,
  pad1: u32,
}

@group(0) @binding(0) var<storage, read_write> Pr: array<f32>;
@group(0) @binding(1) var<storage, read_write> stats: array<f32>;
@group(0) @binding(2) var<storage, read> Z: array<f32>;
@group(0) @binding(3) var<storage, read> labels: array<u32>;
@group(0) @binding(4) var<uniform> P: Params;

override MODE: u32 = 0u;
override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let m = gid.x;
  if (m >= P.M) { return; }
  let row = m * P.K;
  var mx = Z[row];
  var arg = 0u;
  for (var k = 1u; k < P.K; k++) {
    let z = Z[row + k];
    if (z > mx) { mx = z; arg = k; }
  }
  var sum = 0.0;
  for (var k = 0u; k < P.K; k++) { sum += exp(Z[row + k] - mx); }
  let inv = 1.0 / sum;
  if (MODE == 1u) {
    let label = labels[m];
    for (var k = 0u; k < P.K; k++) {
      Pr[row + k] = exp(Z[row + k] - mx) * inv - select(0.0, 1.0, k == label);
    }
    stats[2u * m] = log(sum) - (Z[row + label] - mx);
    stats[2u * m + 1u] = select(0.0, 1.0, arg == label);
  } else {
    for (var k = 0u; k < P.K; k++) { Pr[row + k] = exp(Z[row + k] - mx) * inv; }
  }
}
