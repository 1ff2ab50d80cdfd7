// WebAssembly SIMD matmul kernels for the CPU backend (AssemblyScript).
// Built by `npm run build:wasm` into ../simd-wasm.generated.ts; the plain
// TypeScript matmul in ../kernels.ts is the reference they are tested against.
//
// Shapes: C is M x N, the sum runs over K; every matrix is row-major f32 and
// every pointer is a byte address in this module's memory. Reads may run up
// to 12 bytes past the end of B (lanes that are computed but never stored),
// so the caller leaves that much slack after the last buffer.
//
// The kernels keep a micro-tile of C in f32x4 registers:
//   'nn', 'tn': 4 rows x 8 columns, C[i][j..j+8] += A(i,k) * B[k][j..j+8],
//               with A(i, k) read at A + 4*(i*sI + k*sK) and broadcast;
//   'nt':       2 rows x 4 columns of dot products along k, 4 k at a time.
// Sums run in increasing k, so results do not depend on anything but inputs.

/** First byte after this module's own data: where the caller's buffers may start. */
export function heapBase(): usize {
  return (__heap_base + 15) & ~15;
}

// Stores the first n (0..4+) lanes of v at p.
@inline function storeLanes(p: usize, v: v128, n: i32): void {
  if (n >= 4) {
    v128.store(p, v);
    return;
  }
  if (n > 0) store<f32>(p, f32x4.extract_lane(v, 0));
  if (n > 1) store<f32>(p, f32x4.extract_lane(v, 1), 4);
  if (n > 2) store<f32>(p, f32x4.extract_lane(v, 2), 8);
}

/**
 * C = A·B ('nn': sI = K, sK = 1) or Aᵀ·B ('tn', A stored K x M: sI = 1, sK = M);
 * B is K x N, C is M x N. Rows past M in a tile repeat row M-1 and are not stored.
 */
export function matmulBroadcast(a: usize, sI: i32, sK: i32, b: usize, c: usize, M: i32, K: i32, N: i32): void {
  const stepA = <usize>sK << 2;
  const stepB = <usize>N << 2;
  for (let j0 = 0; j0 < N; j0 += 8) {
    const w = min(8, N - j0);
    for (let i0 = 0; i0 < M; i0 += 4) {
      const rows = min(4, M - i0);
      const pa = a + (<usize>(i0 * sI) << 2);
      const o1 = <usize>((min(i0 + 1, M - 1) - i0) * sI) << 2;
      const o2 = <usize>((min(i0 + 2, M - 1) - i0) * sI) << 2;
      const o3 = <usize>((min(i0 + 3, M - 1) - i0) * sI) << 2;
      const pb = b + (<usize>j0 << 2);
      const pc = c + (<usize>(i0 * N + j0) << 2);
      if (w > 4) tile4x8(pa, o1, o2, o3, stepA, pb, stepB, pc, stepB, K, rows, w);
      else tile4x4(pa, o1, o2, o3, stepA, pb, stepB, pc, stepB, K, rows, w);
    }
  }
}

@inline function tile4x8(
  pa: usize, o1: usize, o2: usize, o3: usize, stepA: usize,
  pb: usize, stepB: usize, pc: usize, stepC: usize, K: i32, rows: i32, w: i32,
): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  for (let k = 0; k < K; k++) {
    const b0 = v128.load(pb);
    const b1 = v128.load(pb, 16);
    let a = v128.load32_splat(pa);
    c00 = f32x4.add(c00, f32x4.mul(a, b0));
    c01 = f32x4.add(c01, f32x4.mul(a, b1));
    a = v128.load32_splat(pa + o1);
    c10 = f32x4.add(c10, f32x4.mul(a, b0));
    c11 = f32x4.add(c11, f32x4.mul(a, b1));
    a = v128.load32_splat(pa + o2);
    c20 = f32x4.add(c20, f32x4.mul(a, b0));
    c21 = f32x4.add(c21, f32x4.mul(a, b1));
    a = v128.load32_splat(pa + o3);
    c30 = f32x4.add(c30, f32x4.mul(a, b0));
    c31 = f32x4.add(c31, f32x4.mul(a, b1));
    pa += stepA;
    pb += stepB;
  }
  storeLanes(pc, c00, w);
  storeLanes(pc + 16, c01, w - 4);
  if (rows < 2) return;
  pc += stepC;
  storeLanes(pc, c10, w);
  storeLanes(pc + 16, c11, w - 4);
  if (rows < 3) return;
  pc += stepC;
  storeLanes(pc, c20, w);
  storeLanes(pc + 16, c21, w - 4);
  if (rows < 4) return;
  pc += stepC;
  storeLanes(pc, c30, w);
  storeLanes(pc + 16, c31, w - 4);
}

@inline function tile4x4(
  pa: usize, o1: usize, o2: usize, o3: usize, stepA: usize,
  pb: usize, stepB: usize, pc: usize, stepC: usize, K: i32, rows: i32, w: i32,
): void {
  let c0 = f32x4.splat(0), c1 = f32x4.splat(0), c2 = f32x4.splat(0), c3 = f32x4.splat(0);
  for (let k = 0; k < K; k++) {
    const b0 = v128.load(pb);
    c0 = f32x4.add(c0, f32x4.mul(v128.load32_splat(pa), b0));
    c1 = f32x4.add(c1, f32x4.mul(v128.load32_splat(pa + o1), b0));
    c2 = f32x4.add(c2, f32x4.mul(v128.load32_splat(pa + o2), b0));
    c3 = f32x4.add(c3, f32x4.mul(v128.load32_splat(pa + o3), b0));
    pa += stepA;
    pb += stepB;
  }
  storeLanes(pc, c0, w);
  if (rows < 2) return;
  storeLanes(pc + stepC, c1, w);
  if (rows < 3) return;
  storeLanes(pc + 2 * stepC, c2, w);
  if (rows < 4) return;
  storeLanes(pc + 3 * stepC, c3, w);
}

// [sum(x), sum(y), sum(z), sum(w)] of four f32x4.
@inline function hsum4(x: v128, y: v128, z: v128, w: v128): v128 {
  const xy = f32x4.add(v128.shuffle<f32>(x, y, 0, 4, 1, 5), v128.shuffle<f32>(x, y, 2, 6, 3, 7));
  const zw = f32x4.add(v128.shuffle<f32>(z, w, 0, 4, 1, 5), v128.shuffle<f32>(z, w, 2, 6, 3, 7));
  return f32x4.add(v128.shuffle<f32>(xy, zw, 0, 1, 4, 5), v128.shuffle<f32>(xy, zw, 2, 3, 6, 7));
}

/**
 * C = A·Bᵀ: A is M x K, B is N x K, C is M x N; each C element is a dot
 * product of two contiguous rows. Rows past M or N in a tile repeat the last
 * row and are not stored.
 */
export function matmulNT(a: usize, b: usize, c: usize, M: i32, K: i32, N: i32): void {
  const K4 = K & ~3;
  const row = <usize>K << 2;
  for (let j0 = 0; j0 < N; j0 += 4) {
    const w = min(4, N - j0);
    const pb0 = b + <usize>j0 * row;
    const pb1 = b + <usize>min(j0 + 1, N - 1) * row;
    const pb2 = b + <usize>min(j0 + 2, N - 1) * row;
    const pb3 = b + <usize>min(j0 + 3, N - 1) * row;
    for (let i0 = 0; i0 < M; i0 += 2) {
      const pa0 = a + <usize>i0 * row;
      const pa1 = a + <usize>min(i0 + 1, M - 1) * row;
      let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c02 = f32x4.splat(0), c03 = f32x4.splat(0);
      let c10 = f32x4.splat(0), c11 = f32x4.splat(0), c12 = f32x4.splat(0), c13 = f32x4.splat(0);
      for (let k = 0; k < K4; k += 4) {
        const o = <usize>k << 2;
        const b0 = v128.load(pb0 + o);
        const b1 = v128.load(pb1 + o);
        const b2 = v128.load(pb2 + o);
        const b3 = v128.load(pb3 + o);
        const a0 = v128.load(pa0 + o);
        c00 = f32x4.add(c00, f32x4.mul(a0, b0));
        c01 = f32x4.add(c01, f32x4.mul(a0, b1));
        c02 = f32x4.add(c02, f32x4.mul(a0, b2));
        c03 = f32x4.add(c03, f32x4.mul(a0, b3));
        const a1 = v128.load(pa1 + o);
        c10 = f32x4.add(c10, f32x4.mul(a1, b0));
        c11 = f32x4.add(c11, f32x4.mul(a1, b1));
        c12 = f32x4.add(c12, f32x4.mul(a1, b2));
        c13 = f32x4.add(c13, f32x4.mul(a1, b3));
      }
      let r0 = hsum4(c00, c01, c02, c03);
      let r1 = hsum4(c10, c11, c12, c13);
      for (let k = K4; k < K; k++) {
        const o = <usize>k << 2;
        let bk = f32x4.splat(load<f32>(pb0 + o));
        bk = f32x4.replace_lane(bk, 1, load<f32>(pb1 + o));
        bk = f32x4.replace_lane(bk, 2, load<f32>(pb2 + o));
        bk = f32x4.replace_lane(bk, 3, load<f32>(pb3 + o));
        r0 = f32x4.add(r0, f32x4.mul(v128.load32_splat(pa0 + o), bk));
        r1 = f32x4.add(r1, f32x4.mul(v128.load32_splat(pa1 + o), bk));
      }
      const pc = c + (<usize>(i0 * N + j0) << 2);
      storeLanes(pc, r0, w);
      if (i0 + 1 < M) storeLanes(pc + (<usize>N << 2), r1, w);
    }
  }
}
