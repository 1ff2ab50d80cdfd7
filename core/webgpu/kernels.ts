/**
 * Typed dispatches of the WGSL kernels in shaders/: each function checks its
 * shapes, picks the kernel's constants and records one dispatch. Buffers are
 * row-major f32 (ids and labels u32). Shape legend as in shaders/matmul.wgsl:
 * op(A) is M x K, op(B) is K x N, C is M x N.
 */
import { GpuError, type KernelSpec, type Recording } from './gpu.ts';

/**
 * Stand-ins for bindings a kernel variant never touches: one writable, one
 * read-only (a buffer may not be bound writable and read-only in one dispatch).
 */
export interface Dummies {
  readonly rw: GPUBuffer;
  readonly ro: GPUBuffer;
}

export type MatmulForm = 'nn' | 'tn' | 'nt';
const FORM: Record<MatmulForm, number> = { nn: 0, tn: 1, nt: 2 };

/** matmul.wgsl's epilogues (see the shader's header). */
export type Epilogue = 'axpby' | 'biasSigmoid' | 'biasSigmoidSample' | 'bias' | 'sigmoidDelta';
const EPI: Record<Epilogue, number> = { axpby: 0, biasSigmoid: 1, biasSigmoidSample: 2, bias: 3, sigmoidDelta: 4 };

/** One matmul configuration: a workgroup of wgX x wgY invocations, each owning a tm x tn block. */
export interface MatmulTile {
  /** Stage K-slices of the operands in workgroup memory (GPUs) or read storage directly (CPU emulation). */
  readonly shared: boolean;
  readonly wgX: number;
  readonly wgY: number;
  /** K-slice depth of the shared tiles. */
  readonly bk: number;
  /** Register block: rows, multiple of 4. */
  readonly tm: number;
  /** Register block: columns, multiple of 4. */
  readonly tn: number;
  /**
   * Use matmul_vec4.wgsl (128-bit loads, double-buffered workgroup tiles) where
   * the operands' contiguous dimensions are multiples of 4 (see vec4Fits);
   * other shapes fall back to matmul.wgsl with the same tile. Needs `shared`
   * and bk a multiple of 4.
   */
  readonly vec4?: boolean;
  /** matmul_vec4: workgroup-tile rows padded by this many vec4s (default 0). */
  readonly pad?: number;
}

/**
 * Matmul tunables: the `large` tile for problems that fill the device with
 * workgroups (at least `minTiles` of them), the `small` one otherwise.
 */
export interface MatmulTuning {
  readonly large: MatmulTile;
  readonly small: MatmulTile;
  readonly minTiles: number;
}

/**
 * Real GPUs, chosen by bench/webgpu-matmul.ts --presets on an H100
 * (bench/README.md): vec4 loads everywhere they fit; 128 x 64 workgroup tiles
 * (16 x 16 invocations of 8 x 4) for problems of 128 tiles or more (1024^3 up),
 * 32 x 32 (8 x 8 invocations of 4 x 4) for the DBN's batch-100 products, so
 * that more workgroups run at once.
 */
export const GPU_TUNING: MatmulTuning = {
  large: { shared: true, vec4: true, wgX: 16, wgY: 16, bk: 16, tm: 8, tn: 4 },
  small: { shared: true, vec4: true, wgX: 8, wgY: 8, bk: 16, tm: 4, tn: 4 },
  minTiles: 128,
};

/** The GPU tuning before matmul_vec4 (scalar loads, one workgroup buffer), kept for benchmarks. */
export const GPU_TUNING_SCALAR: MatmulTuning = {
  large: { shared: true, wgX: 16, wgY: 16, bk: 16, tm: 8, tn: 8 },
  small: { shared: true, wgX: 16, wgY: 16, bk: 16, tm: 4, tn: 4 },
  minTiles: 256,
};

/**
 * CPU emulation (lavapipe, SwiftShader): register blocking without barriers,
 * one row of invocations per workgroup so the rows of A are uniform (loaded
 * once per SIMD batch of invocations, not gathered per invocation).
 */
export const CPU_TUNING: MatmulTuning = {
  large: { shared: false, wgX: 16, wgY: 1, bk: 16, tm: 8, tn: 8 },
  small: { shared: false, wgX: 16, wgY: 1, bk: 16, tm: 8, tn: 8 },
  minTiles: 0,
};

const tileCount = (t: MatmulTile, M: number, N: number): number => Math.ceil(M / (t.wgY * t.tm)) * Math.ceil(N / (t.wgX * t.tn));

export function matmulTile(t: MatmulTuning, M: number, N: number): MatmulTile {
  return tileCount(t.large, M, N) >= t.minTiles ? t.large : t.small;
}

/** Whether matmul_vec4 can run this shape: the contiguous dimension of each operand is a multiple of 4. */
export function vec4Fits(form: MatmulForm, M: number, K: number, N: number): boolean {
  if (form === 'nn') return K % 4 === 0 && N % 4 === 0;
  if (form === 'tn') return M % 4 === 0 && N % 4 === 0;
  return K % 4 === 0;
}

/** The shader a tile runs for a shape: matmul_vec4 where the tile asks for it and the shape allows, else matmul. */
export function matmulKernel(form: MatmulForm, tile: MatmulTile, M: number, K: number, N: number): 'matmul' | 'matmul_vec4' {
  return tile.vec4 && tile.shared && vec4Fits(form, M, K, N) ? 'matmul_vec4' : 'matmul';
}

/** The kernel build of a tile; pass the shape (M, K, N) to get matmul_vec4 where it applies. */
export function matmulSpec(form: MatmulForm, epi: Epilogue, tile: MatmulTile, shape?: readonly [number, number, number], csum = false): KernelSpec {
  if (tile.tm % 4 || tile.tn % 4) throw new GpuError(`matmul: register block ${tile.tm}x${tile.tn} must be multiples of 4`);
  if (csum && (form !== 'tn' || epi !== 'axpby')) throw new GpuError(`matmul ${form}/${epi}: column sums (CSUM) come only with the tn form and the axpby epilogue`);
  // CSUM appears in the key (and the constants) only when set, so existing kernels keep their keys.
  const cs: Record<string, boolean> = csum ? { CSUM: true } : {};
  if (shape && matmulKernel(form, tile, ...shape) === 'matmul_vec4') {
    if (tile.bk % 4) throw new GpuError(`matmul_vec4: bk ${tile.bk} must be a multiple of 4`);
    const nt = tile.wgX * tile.wgY;
    const bm4 = (tile.wgY * tile.tm) / 4;
    const bn4 = (tile.wgX * tile.tn) / 4;
    // Load units per slice (see matmul_vec4.wgsl): vec4s for a direct operand, 4 x 4 blocks for a transposed one.
    const unitsA = form === 'tn' ? bm4 * tile.bk : bm4 * (tile.bk / 4);
    const unitsB = form === 'nt' ? bn4 * (tile.bk / 4) : bn4 * tile.bk;
    return {
      shader: 'matmul_vec4',
      libs: ['rng', 'matmul_common'],
      overrides: { FORM: FORM[form], EPI: EPI[epi], WG_X: tile.wgX, WG_Y: tile.wgY, BK: tile.bk, PAD: tile.pad ?? 0, ...cs },
      consts: { TM: tile.tm, TN: tile.tn, LA: Math.ceil(unitsA / nt), LB: Math.ceil(unitsB / nt) },
    };
  }
  return {
    shader: 'matmul',
    libs: ['rng', 'matmul_common'],
    overrides: { FORM: FORM[form], EPI: EPI[epi], WG_X: tile.wgX, WG_Y: tile.wgY, BK: tile.bk, SHARED: tile.shared, ...cs },
    consts: { TM: tile.tm, TN: tile.tn },
  };
}

export interface MatmulArgs {
  readonly form: MatmulForm;
  readonly epi: Epilogue;
  readonly C: GPUBuffer;
  readonly A: GPUBuffer;
  readonly B: GPUBuffer;
  readonly M: number;
  readonly K: number;
  readonly N: number;
  /** Bernoulli samples out (biasSigmoidSample). */
  readonly S?: GPUBuffer;
  /**
   * Column sums of op(B) out, N values (tn/axpby only): colsum[n] = alpha *
   * sum_k B[k, n] + beta * colsum[n], the bias gradient fused into dW's product.
   */
  readonly colsum?: GPUBuffer;
  /** bias (N) or activations (M x N, sigmoidDelta). */
  readonly aux?: GPUBuffer;
  /** M u32 example ids (biasSigmoidSample). */
  readonly ids?: GPUBuffer;
  readonly alpha?: number;
  readonly beta?: number;
  readonly seed?: number;
  readonly iteration?: number;
}

export function matmul(rec: Recording, tuning: MatmulTuning, a: MatmulArgs, dummy: Dummies): void {
  const { M, K, N } = a;
  for (const [n, v] of [['M', M], ['K', K], ['N', N]] as const) {
    if (!Number.isInteger(v) || v < 1 || v >= 2 ** 31) throw new GpuError(`matmul ${a.form}: ${n} = ${v}, expected an integer >= 1`);
  }
  const need = (name: string, b: GPUBuffer | undefined, floats: number): GPUBuffer => {
    if (!b) throw new GpuError(`matmul ${a.form}/${a.epi}: needs ${name}`);
    if (b.size < floats * 4) throw new GpuError(`matmul ${a.form}/${a.epi}: ${name} "${b.label}" holds ${b.size} bytes, needs ${floats * 4}`);
    return b;
  };
  need('C', a.C, M * N);
  need('A', a.A, M * K);
  need('B', a.B, K * N);
  if (a.colsum && a.S) throw new GpuError(`matmul ${a.form}/${a.epi}: colsum and S share binding 1; pass one`);
  if (a.colsum) need('colsum', a.colsum, N);
  if (a.epi === 'biasSigmoidSample') {
    need('S', a.S, M * N);
    need('ids', a.ids, M);
  }
  if (a.epi === 'biasSigmoid' || a.epi === 'biasSigmoidSample' || a.epi === 'bias') need('aux (bias)', a.aux, N);
  if (a.epi === 'sigmoidDelta') need('aux (activations)', a.aux, M * N);
  const tile = matmulTile(tuning, M, N);
  const u = new ArrayBuffer(32);
  const ui = new Uint32Array(u);
  const uf = new Float32Array(u);
  ui[0] = M;
  ui[1] = K;
  ui[2] = N;
  ui[3] = (a.seed ?? 0) >>> 0;
  ui[4] = (a.iteration ?? 0) >>> 0;
  uf[5] = a.alpha ?? 1;
  uf[6] = a.beta ?? 0;
  rec.dispatch(
    matmulSpec(a.form, a.epi, tile, [M, K, N], a.colsum !== undefined),
    [a.C, a.S ?? a.colsum ?? dummy.rw, a.A, a.B, a.aux ?? dummy.ro, a.ids ?? dummy.ro],
    u,
    [Math.ceil(N / (tile.wgX * tile.tn)), Math.ceil(M / (tile.wgY * tile.tm)), 1],
  );
}

const COLSUM_WG = 64;

/** out[n] = sum_m X[m, n]; or with Y, out[n] = sum_m (X - Y)[m, n] and sq[n] = sum_m (X - Y)[m, n]^2. */
export function colsum(rec: Recording, out: GPUBuffer, X: GPUBuffer, M: number, N: number, dummy: Dummies, Y?: GPUBuffer, sq?: GPUBuffer): void {
  const u = new Uint32Array([M, N, 0, 0]);
  rec.dispatch(
    { shader: 'colsum', overrides: { MODE: Y ? 1 : 0, WG: COLSUM_WG } },
    [out, sq ?? dummy.rw, X, Y ?? dummy.ro],
    u.buffer,
    [Math.ceil(N / COLSUM_WG), 1, 1],
  );
}

const SOFTMAX_WG = 64;

/**
 * Row softmax of Z (M x K) into Pr; with labels, Pr gets the delta p - onehot
 * and stats (M x 2) the loss -log p[label] and the hit (0/1) of each row.
 */
export function softmaxXent(rec: Recording, Pr: GPUBuffer, Z: GPUBuffer, M: number, K: number, dummy: Dummies, labels?: GPUBuffer, stats?: GPUBuffer): void {
  if (labels && !stats) throw new GpuError('softmax_xent: labels need a stats buffer');
  const u = new Uint32Array([M, K, 0, 0]);
  rec.dispatch(
    { shader: 'softmax_xent', overrides: { MODE: labels ? 1 : 0, WG: SOFTMAX_WG } },
    [Pr, stats ?? dummy.rw, Z, labels ?? dummy.ro],
    u.buffer,
    [Math.ceil(M / SOFTMAX_WG), 1, 1],
  );
}

const DENSE_SOFTMAX_WG = 64;
/** The most classes dense_softmax.wgsl keeps in registers; wider output layers take matmul + softmaxXent. */
export const DENSE_SOFTMAX_KMAX = 16;

/**
 * The output layer in one dispatch (shaders/dense_softmax.wgsl): logits
 * X W + bias (X is M x nIn, W nIn x K, K <= DENSE_SOFTMAX_KMAX), then as
 * softmaxXent: probabilities into Pr, or with labels the delta p - onehot and
 * stats (M x 2) the loss and hit of each row.
 */
export function denseSoftmax(
  rec: Recording,
  a: { Pr: GPUBuffer; X: GPUBuffer; W: GPUBuffer; bias: GPUBuffer; M: number; nIn: number; K: number; labels?: GPUBuffer; stats?: GPUBuffer },
  dummy: Dummies,
): void {
  const { M, nIn, K } = a;
  if (M === 0) return;
  if (K < 1 || K > DENSE_SOFTMAX_KMAX) throw new GpuError(`dense_softmax: ${K} classes, the kernel takes 1 to ${DENSE_SOFTMAX_KMAX} (use matmul + softmaxXent)`);
  if (a.labels && !a.stats) throw new GpuError('dense_softmax: labels need a stats buffer');
  const u = new Uint32Array([M, nIn, K, 0]);
  const rows = Math.min(M, 65535);
  rec.dispatch(
    { shader: 'dense_softmax', overrides: { MODE: a.labels ? 1 : 0, WG: DENSE_SOFTMAX_WG }, consts: { KMAX: DENSE_SOFTMAX_KMAX } },
    [a.Pr, a.stats ?? dummy.rw, a.X, a.W, a.bias, a.labels ?? dummy.ro],
    u.buffer,
    [rows, Math.ceil(M / rows), 1],
  );
}
