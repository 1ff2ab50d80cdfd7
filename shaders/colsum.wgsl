// colsum: column reductions over the rows of a batch (bias gradients and the
// CD-1 statistics).
//   MODE 0: out[n] = sum_m X[m, n]                                db of backprop (X = delta)
//   MODE 1: out[n] = sum_m (X[m, n] - Y[m, n]),
//           sq[n]  = sum_m (X[m, n] - Y[m, n])^2                  CD-1: db, dc and the reconstruction error
//
// Bindings (group 0, fixed order: outputs, inputs, uniforms):
//   0 out storage read_write  N
//   1 sq  storage read_write  N (MODE 1; any buffer otherwise)
//   2 X   storage read        M x N
//   3 Y   storage read        M x N (MODE 1; any buffer otherwise)
//   4 P   uniform             Params
//
// Workgroup: WG invocations in x, one column each, walking the M rows in order
// (consecutive invocations read consecutive addresses); dispatch (ceil(N / WG), 1, 1).

struct Params {
  M: u32,
  N: u32,
  pad0: u32,
  pad1: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read_write> sq: array<f32>;
@group(0) @binding(2) var<storage, read> X: array<f32>;
@group(0) @binding(3) var<storage, read> Y: array<f32>;
@group(0) @binding(4) var<uniform> P: Params;

override MODE: u32 = 0u;
override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n = gid.x;
  if (n >= P.N) { return; }
  var s = 0.0;
  var s2 = 0.0;
  for (var m = 0u; m < P.M; m++) {
    let at = m * P.N + n;
    if (MODE == 1u) {
      let d = X[at] - Y[at];
      s += d;
      s2 = fma(d, d, s2);
    } else {
      s += X[at];
    }
  }
  out[n] = s;
  if (MODE == 1u) { sq[n] = s2; }
}
