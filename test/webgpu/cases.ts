/**
 * The webgpu backend's checks, runtime-neutral: Deno runs them through
 * `deno test` (webgpu.deno.test.ts), Chromium through a page that Vitest drives
 * (chromium.test.ts). Every check draws fresh random inputs (its seed is in any
 * failure message), uses sizes that are not multiples of the tiles, poisons
 * outputs with NaN so an unwritten element fails, and compares with a float64
 * reference within the tolerance it states.
 */
import type { DenseLayer, RbmLayer } from '../../core/backend.ts';
import * as cpu from '../../core/cpu/index.ts';
import { uniform } from '../../core/rng.ts';
import {
  colsum,
  CPU_TUNING,
  DENSE_SOFTMAX_KMAX,
  denseSoftmax,
  type Dummies,
  GPU_TUNING,
  type Epilogue,
  type Gpu,
  GpuError,
  matmul,
  matmulKernel,
  type MatmulTile,
  type MatmulTuning,
  softmaxXent,
  vec4Fits,
  type WebGpuBackend,
} from '../../core/webgpu/index.ts';
import { backpropRef, cd1Ref, expectClose, type Form, freshSeed, matmul64, Rand, randomLayer, sigmoid64, softmax64 } from './reference.ts';
import { DEFAULT_TOLERANCE } from '../../coordinator/trust/compare.ts';
import { wholeTaskAgreement } from './whole-task.ts';

export interface CaseContext {
  /** a backend made with { poison: true } */
  readonly backend: WebGpuBackend;
  /** builds another backend on the same runtime (for the error checks) */
  readonly create: (opts: { matmul?: MatmulTuning; poison?: boolean }) => Promise<WebGpuBackend>;
}

export interface Case {
  readonly name: string;
  readonly run: (ctx: CaseContext) => Promise<void>;
}

/** Register blocks every runtime must get right, whatever its default. */
export const TILES: Record<string, MatmulTile> = {
  direct4x4: { shared: false, wgX: 8, wgY: 8, bk: 16, tm: 4, tn: 4 },
  direct16x1r8x8: { shared: false, wgX: 16, wgY: 1, bk: 16, tm: 8, tn: 8 },
  shared16x16r4x4: { shared: true, wgX: 16, wgY: 16, bk: 16, tm: 4, tn: 4 },
  shared16x16r8x8: { shared: true, wgX: 16, wgY: 16, bk: 16, tm: 8, tn: 8 },
  shared8x4r4x8bk8: { shared: true, wgX: 8, wgY: 4, bk: 8, tm: 4, tn: 8 },
  // matmul_vec4 where the shape allows (VEC_SHAPES), matmul.wgsl otherwise (SMALL_SHAPES).
  vec16x16r8x8bk8: { shared: true, vec4: true, wgX: 16, wgY: 16, bk: 8, tm: 8, tn: 8 },
  vec16x16r8x4bk16: { shared: true, vec4: true, wgX: 16, wgY: 16, bk: 16, tm: 8, tn: 4 },
  vec8x8r4x4bk16pad1: { shared: true, vec4: true, wgX: 8, wgY: 8, bk: 16, tm: 4, tn: 4, pad: 1 },
  vec16x4r4x8bk4: { shared: true, vec4: true, wgX: 16, wgY: 4, bk: 4, tm: 4, tn: 8 },
  vec8x8r4x4bk32: { shared: true, vec4: true, wgX: 8, wgY: 8, bk: 32, tm: 4, tn: 4 },
};

const only = (t: MatmulTile): MatmulTuning => ({ large: t, small: t, minTiles: 0 });

function dummies(gpu: Gpu): Dummies {
  return { rw: gpu.scratch('test/dummy-rw', 4), ro: gpu.scratch('test/dummy-ro', 4) };
}

interface MatmulRun {
  C: Float32Array;
  S?: Float32Array;
}

/** One matmul dispatch on fresh device buffers; C is poisoned unless C0 is given. */
async function runMatmul(
  gpu: Gpu,
  tuning: MatmulTuning,
  form: Form,
  epi: Epilogue,
  A: Float32Array,
  B: Float32Array,
  M: number,
  K: number,
  N: number,
  extra: { C0?: Float32Array; aux?: Float32Array; ids?: Uint32Array; alpha?: number; beta?: number; seed?: number; iteration?: number; colsum?: boolean; S0?: Float32Array } = {},
): Promise<MatmulRun> {
  const rec = gpu.record(`test/matmul-${form}-${epi}`);
  const C = rec.own(extra.C0 ? gpu.upload('test/C0', extra.C0) : gpu.scratch('test/C', M * N, true));
  const S = epi === 'biasSigmoidSample' ? rec.own(gpu.scratch('test/S', M * N, true)) : undefined;
  const cs = extra.colsum ? rec.own(extra.S0 ? gpu.upload('test/S0', extra.S0) : gpu.scratch('test/colsum', N, true)) : undefined;
  const d = dummies(gpu);
  rec.own(d.rw);
  rec.own(d.ro);
  matmul(rec, tuning, {
    form,
    epi,
    C,
    S,
    colsum: cs,
    A: rec.own(gpu.upload('test/A', A)),
    B: rec.own(gpu.upload('test/B', B)),
    aux: extra.aux ? rec.own(gpu.upload('test/aux', extra.aux)) : undefined,
    ids: extra.ids ? rec.own(gpu.upload('test/ids', extra.ids)) : undefined,
    M,
    K,
    N,
    alpha: extra.alpha,
    beta: extra.beta,
    seed: extra.seed,
    iteration: extra.iteration,
  }, d);
  const out = await rec.finish(S ?? cs ? [[C, M * N], [(S ?? cs)!, S ? M * N : N]] : [[C, M * N]]);
  return { C: out[0]!, S: out[1] };
}

/** Tolerance of a float32 dot product of K terms: 1e-5 of sum |a b|, plus 1e-6. */
const dotTol = (absC: Float64Array) => (i: number): number => 1e-5 * absC[i]! + 1e-6;

async function checkMatmul(gpu: Gpu, tuning: MatmulTuning, form: Form, M: number, K: number, N: number, kernel?: 'matmul' | 'matmul_vec4'): Promise<void> {
  if (kernel) {
    const got = matmulKernel(form, tuning.large, M, K, N);
    if (got !== kernel) throw new Error(`matmul ${form} ${M}x${K}x${N}: expected kernel ${kernel}, the tile selects ${got}`);
  }
  const seed = freshSeed();
  const r = new Rand(seed);
  const A = r.floats(M * K);
  const B = r.floats(K * N);
  const { C } = await runMatmul(gpu, tuning, form, 'axpby', A, B, M, K, N);
  const ref = matmul64(form, A, B, M, K, N);
  expectClose(`matmul ${form} ${M}x${K}x${N} (seed ${seed}) C`, C, ref.C, dotTol(ref.mag));
}

const SMALL_SHAPES: readonly [number, number, number][] = [[1, 1, 1], [7, 13, 5], [65, 33, 129], [3, 200, 9], [130, 17, 67]];

/**
 * Shapes whose contiguous dimensions are multiples of 4 (every form takes
 * matmul_vec4) but that are not multiples of any tile, with one odd M (nn and
 * nt still take matmul_vec4; tn falls back to matmul.wgsl).
 */
const VEC_SHAPES: readonly [number, number, number][] = [[4, 4, 4], [12, 8, 20], [68, 36, 132], [4, 200, 12], [132, 20, 68], [7, 44, 36]];

const matmulCases: Case[] = [
  {
    name: 'matmul kernel choice: matmul_vec4 only where the contiguous dimensions are multiples of 4',
    run: async () => {
      const v = TILES.vec16x16r8x8bk8!;
      const want: [Form, number, number, number, string][] = [
        ['nn', 7, 44, 36, 'matmul_vec4'], ['nn', 4, 42, 36, 'matmul'], ['nn', 4, 44, 38, 'matmul'],
        ['tn', 8, 5, 12, 'matmul_vec4'], ['tn', 7, 44, 36, 'matmul'], ['tn', 8, 4, 6, 'matmul'],
        ['nt', 7, 44, 5, 'matmul_vec4'], ['nt', 4, 42, 4, 'matmul'],
      ];
      for (const [form, M, K, N, k] of want) {
        if (matmulKernel(form, v, M, K, N) !== k) throw new Error(`${form} ${M}x${K}x${N}: expected ${k}`);
        if (matmulKernel(form, TILES.shared16x16r8x8!, M, K, N) !== 'matmul') throw new Error(`${form} ${M}x${K}x${N}: a scalar tile took matmul_vec4`);
      }
    },
  },
];
for (const [tileName, tile] of Object.entries(TILES)) {
  for (const form of ['nn', 'tn', 'nt'] as const) {
    const shapes = tile.vec4 ? [...SMALL_SHAPES, ...VEC_SHAPES] : SMALL_SHAPES;
    matmulCases.push({
      name: `matmul ${form}, ${tileName}, ${shapes.map((s) => s.join('x')).join(' ')}`,
      run: async ({ backend }) => {
        for (const [M, K, N] of shapes) {
          await checkMatmul(backend.gpu, only(tile), form, M, K, N, tile.vec4 ? (vec4Fits(form, M, K, N) ? 'matmul_vec4' : 'matmul') : undefined);
        }
      },
    });
  }
}

export const CASES: Case[] = [
  ...matmulCases,
  {
    // The DBN's big shapes, once each, on the adapter's default tuning.
    name: 'matmul nn 100x784x500, tn 784x100x500, nt 33x2000x500 (default tuning)',
    run: async ({ backend }) => {
      await checkMatmul(backend.gpu, backend.tuning, 'nn', 100, 784, 500);
      await checkMatmul(backend.gpu, backend.tuning, 'tn', 784, 100, 500);
      await checkMatmul(backend.gpu, backend.tuning, 'nt', 33, 2000, 500);
    },
  },
  {
    name: 'matmul 33x500x2000 nn + bias + sigmoid (default tuning)',
    run: async ({ backend }) => {
      const seed = freshSeed();
      const r = new Rand(seed);
      const [M, K, N] = [33, 500, 2000];
      const A = r.floats(M * K, 0, 1);
      const B = r.floats(K * N, -0.1, 0.1);
      const bias = r.floats(N);
      const { C } = await runMatmul(backend.gpu, backend.tuning, 'nn', 'biasSigmoid', A, B, M, K, N, { aux: bias });
      const ref = matmul64('nn', A, B, M, K, N);
      // sigmoid' <= 1/4, so the dot product's error bound carries over; plus 1e-6 for the sigmoid itself
      expectClose(`biasSigmoid 33x500x2000 (seed ${seed})`, C, ref.C.map((z, i) => sigmoid64(z + bias[i % N]!)), (i) => 0.25 * 1e-5 * ref.mag[i]! + 1e-6);
    },
  },
  {
    name: 'matmul epilogues: alpha/beta accumulate, bias, sigmoid at +-400, sigmoid delta',
    run: async ({ backend }) => {
      const gpu = backend.gpu;
      // GPU_TUNING on 9x20x12 takes matmul_vec4 (its epilogues), on 9x21x11 matmul.wgsl.
      const runs: [MatmulTuning, number, number, number][] = [[backend.tuning, 9, 21, 11], [CPU_TUNING, 9, 21, 11], [GPU_TUNING, 9, 20, 12]];
      for (const [tuning, M, K, N] of runs) {
        const seed = freshSeed();
        const r = new Rand(seed);
        const A = r.floats(M * K);
        const B = r.floats(K * N);
        const ref = matmul64('nn', A, B, M, K, N);
        const tol = dotTol(ref.mag);
        const C0 = r.floats(M * N);
        const acc = await runMatmul(gpu, tuning, 'nn', 'axpby', A, B, M, K, N, { C0, alpha: -0.5, beta: 2 });
        expectClose(`axpby (seed ${seed})`, acc.C, ref.C.map((c, i) => -0.5 * c + 2 * C0[i]!), (i) => tol(i) + 1e-6 * Math.abs(C0[i]!));
        const bias = r.floats(N, -3, 3);
        const lin = await runMatmul(gpu, tuning, 'nn', 'bias', A, B, M, K, N, { aux: bias });
        expectClose(`bias (seed ${seed})`, lin.C, ref.C.map((c, i) => c + bias[i % N]!), (i) => tol(i) + 1e-6);
        // +-400 on the bias: sigmoid must give exactly 1 and 0, never inf or NaN
        const huge = bias.map((_, j) => (j % 2 ? 400 : -400));
        const sat = await runMatmul(gpu, tuning, 'nn', 'biasSigmoid', A, B, M, K, N, { aux: huge });
        expectClose(`sigmoid at +-400 (seed ${seed})`, sat.C, ref.C.map((_, i) => (i % N) % 2 ? 1 : 0), () => 0);
        const act = r.floats(M * N, 0, 1);
        const del = await runMatmul(gpu, tuning, 'nn', 'sigmoidDelta', A, B, M, K, N, { aux: act });
        expectClose(`sigmoidDelta (seed ${seed})`, del.C, ref.C.map((c, i) => c * act[i]! * (1 - act[i]!)), (i) => 0.25 * tol(i) + 1e-7);
      }
    },
  },
  {
    name: 'matmul bias + sigmoid + Bernoulli sample: the counter-based hash matches rng.ts',
    run: async ({ backend }) => {
      const runs: [MatmulTuning, number, number, number][] = [[backend.tuning, 37, 19, 45], [CPU_TUNING, 37, 19, 45], [GPU_TUNING, 37, 20, 44]];
      for (const [tuning, M, K, N] of runs) {
        const seed = freshSeed();
        const r = new Rand(seed);
        const A = r.floats(M * K, 0, 1);
        const B = r.floats(K * N, -0.5, 0.5);
        const bias = r.floats(N, -0.5, 0.5);
        const ids = r.ints(M, 2 ** 32);
        const rs = r.ints(2, 2 ** 32);
        const out = await runMatmul(backend.gpu, tuning, 'nn', 'biasSigmoidSample', A, B, M, K, N, { aux: bias, ids, seed: rs[0], iteration: rs[1] });
        const ref = matmul64('nn', A, B, M, K, N);
        const h64 = ref.C.map((z, i) => sigmoid64(z + bias[i % N]!));
        expectClose(`h0 (seed ${seed})`, out.C, h64, (i) => 0.25 * 1e-5 * ref.mag[i]! + 1e-6);
        let compared = 0;
        for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
          const u = uniform(rs[0]!, rs[1]!, ids[i]!, j);
          const s = out.S![i * N + j];
          // Exactly the CPU's rule applied to the GPU's own probability: checks the hash bit for bit.
          if (s !== (u < out.C[i * N + j]! ? 1 : 0)) throw new Error(`sample [${i},${j}] = ${s} but u = ${u}, h = ${out.C[i * N + j]} (seed ${seed})`);
          // Against the float64 probability wherever it is not within rounding of the threshold.
          if (Math.abs(h64[i * N + j]! - u) > 1e-5) {
            compared++;
            if (s !== (u < h64[i * N + j]! ? 1 : 0)) throw new Error(`sample [${i},${j}] = ${s}, float64 says ${u < h64[i * N + j]!} (seed ${seed})`);
          }
        }
        if (compared < 0.9 * M * N) throw new Error(`only ${compared} of ${M * N} samples were away from the threshold`);
      }
    },
  },
  {
    name: 'colsum: column sums, and sums of differences and squared differences',
    run: async ({ backend }) => {
      const gpu = backend.gpu;
      const seed = freshSeed();
      const r = new Rand(seed);
      for (const [M, N] of [[1, 1], [13, 7], [100, 130]] as const) {
        const X = r.floats(M * N);
        const Y = r.floats(M * N);
        const rec = gpu.record('test/colsum');
        const d = dummies(gpu);
        const [xb, yb] = [rec.own(gpu.upload('test/X', X)), rec.own(gpu.upload('test/Y', Y))];
        const [s, diff, sq] = [0, 1, 2].map(() => rec.own(gpu.scratch('test/out', N, true)));
        colsum(rec, s!, xb, M, N, d);
        colsum(rec, diff!, xb, M, N, d, yb, sq);
        const [sh, dh, qh] = await rec.finish([[s!, N], [diff!, N], [sq!, N]]);
        const ref = [new Float64Array(N), new Float64Array(N), new Float64Array(N)];
        for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
          const dd = X[m * N + n]! - Y[m * N + n]!;
          ref[0]![n]! += X[m * N + n]!;
          ref[1]![n]! += dd;
          ref[2]![n]! += dd * dd;
        }
        const tol = (): number => 1e-6 * M * 4;
        expectClose(`colsum ${M}x${N} (seed ${seed})`, sh!, ref[0]!, tol);
        expectClose(`colsum diff ${M}x${N} (seed ${seed})`, dh!, ref[1]!, tol);
        expectClose(`colsum sq ${M}x${N} (seed ${seed})`, qh!, ref[2]!, tol);
      }
    },
  },
  {
    name: 'softmax_xent: probabilities, loss, hits and delta, stable for logits of +-400',
    run: async ({ backend }) => {
      const gpu = backend.gpu;
      const seed = freshSeed();
      const r = new Rand(seed);
      for (const [M, K, scale] of [[1, 1, 1], [67, 10, 5], [5, 3, 400]] as const) {
        const Z = r.floats(M * K, -scale, scale);
        const labels = r.ints(M, K);
        const rec = gpu.record('test/softmax');
        const d = dummies(gpu);
        const zb = rec.own(gpu.upload('test/Z', Z));
        const probs = rec.own(gpu.scratch('test/probs', M * K, true));
        const delta = rec.own(gpu.scratch('test/delta', M * K, true));
        const stats = rec.own(gpu.scratch('test/stats', M * 2, true));
        softmaxXent(rec, probs, zb, M, K, d);
        softmaxXent(rec, delta, zb, M, K, d, rec.own(gpu.upload('test/labels', labels)), stats);
        const [ph, dh, sh] = await rec.finish([[probs, M * K], [delta, M * K], [stats, M * 2]]);
        const ref = softmax64(Float64Array.from(Z), M, K);
        expectClose(`softmax ${M}x${K} (seed ${seed})`, ph!, ref.probs, () => 1e-6);
        expectClose(`delta ${M}x${K} (seed ${seed})`, dh!, ref.probs.map((p, i) => p - (labels[Math.floor(i / K)] === i % K ? 1 : 0)), () => 1e-6);
        const st = new Float64Array(M * 2);
        for (let i = 0; i < M; i++) {
          st[2 * i] = -ref.logp[i * K + labels[i]!]!;
          st[2 * i + 1] = ref.argmax[i] === labels[i] ? 1 : 0;
        }
        expectClose(`loss and hits ${M}x${K} (seed ${seed})`, sh!, st, (i) => (i % 2 ? 0 : 1e-5 * (1 + st[i]!)));
      }
    },
  },
  {
    name: 'backend cd1: whole task with a lower layer equals the float64 reference (12x37 -> 29, RBM 29x23)',
    run: async ({ backend }) => checkCd1(backend, 12, [37], 29, 23),
  },
  {
    name: 'backend cd1: no lower layers, one example, RBM 1x1 and 7x3',
    run: async ({ backend }) => {
      await checkCd1(backend, 1, [], 1, 1);
      await checkCd1(backend, 5, [], 7, 3);
    },
  },
  {
    name: 'backend backprop: whole task equals the float64 reference (13x37-29-23-7), predict and propagate too',
    run: async ({ backend }) => {
      const seed = freshSeed();
      const r = new Rand(seed);
      const B = 13;
      const sizes = [37, 29, 23, 7];
      const layers = sizes.slice(1).map((n, i) => randomLayer(r, sizes[i]!, n, 0.5));
      const x = r.floats(B * 37, 0, 1);
      const labels = Uint8Array.from(r.ints(B, 7));
      const got = await backend.backprop({ layers, x, labels, batch: B });
      const ref = backpropRef(layers, x, labels, B);
      layers.forEach((l, i) => {
        expectClose(`dW${i} (seed ${seed})`, got.dW[i]!, ref.dW[i]!, (j) => 1e-5 * (B + Math.abs(ref.dW[i]![j]!)));
        expectClose(`db${i} (seed ${seed})`, got.db[i]!, ref.db[i]!, (j) => 1e-5 * (B + Math.abs(ref.db[i]![j]!)));
      });
      expectClose(`loss (seed ${seed})`, [got.loss], [ref.loss], () => 1e-5 * ref.loss);
      if (got.correct !== ref.correct || got.count !== B) throw new Error(`correct ${got.correct}/${got.count}, expected ${ref.correct}/${B} (seed ${seed})`);
      const probs = await backend.predict(layers, x, B);
      expectClose(`predict (seed ${seed})`, probs, ref.probs, () => 1e-5);
      const hidden = await backend.propagate(layers.slice(0, 2), x, B);
      const top = forwardSigmoid(layers.slice(0, 2), x, B);
      expectClose(`propagate (seed ${seed})`, hidden, top, () => 1e-5);
    },
  },
  {
    name: 'backend residency: weights re-sent only for a new weightsVersion or without one',
    run: async ({ backend }) => {
      const seed = freshSeed();
      const r = new Rand(seed);
      const layers = [randomLayer(r, 11, 6), randomLayer(r, 6, 3)];
      const x = r.floats(4 * 11, 0, 1);
      const labels = Uint8Array.from([0, 1, 2, 1]);
      const before = backend.stats.weightUploads;
      await backend.backprop({ layers, x, labels, batch: 4, weightsVersion: 1 });
      const sent = backend.stats.weightUploads - before;
      if (sent !== 4) throw new Error(`first task sent ${sent} tensors, expected 4 (2 layers x W, b)`);
      await backend.backprop({ layers, x, labels, batch: 4, weightsVersion: 1 });
      if (backend.stats.weightUploads - before !== 4) throw new Error('same weightsVersion: weights were sent again');
      // An in-place update (as the optimizer does) with a new version must be seen.
      layers[1]!.W.set(r.floats(18));
      const got = await backend.backprop({ layers, x, labels, batch: 4, weightsVersion: 2 });
      if (backend.stats.weightUploads - before !== 8) throw new Error(`new version: ${backend.stats.weightUploads - before - 4} tensors re-sent, expected 4`);
      const ref = backpropRef(layers, x, labels, 4);
      expectClose(`loss after update (seed ${seed})`, [got.loss], [ref.loss], () => 1e-5 * ref.loss);
      // Without a version every task sends its weights: an in-place change is always seen.
      layers[0]!.W.set(r.floats(66));
      const got2 = await backend.backprop({ layers, x, labels, batch: 4 });
      expectClose(`loss without version (seed ${seed})`, [got2.loss], [backpropRef(layers, x, labels, 4).loss], () => 1e-5 * ref.loss);
    },
  },
  {
    name: 'errors: a bad kernel build names the kernel; bad shapes and a disposed backend say what is wrong',
    run: async ({ backend, create }) => {
      const gpu = backend.gpu;
      await expectThrow('unknown override', () => gpu.pipeline({ shader: 'colsum', overrides: { NO_SUCH_CONSTANT: 1 } }), /kernel colsum\{NO_SUCH_CONSTANT=1\}/);
      await expectThrow('register block 3', async () => {
        const rec = gpu.record('test/bad-tile');
        const b = gpu.scratch('test/b', 16);
        matmul(rec, only({ ...TILES.direct4x4!, tm: 3 }), { form: 'nn', epi: 'axpby', C: b, A: b, B: b, M: 2, K: 2, N: 2 }, dummies(gpu));
      }, /multiples of 4/);
      await expectThrow('short x', () => backend.propagate([randomLayer(new Rand(1), 4, 2)], new Float32Array(7), 2), /x has 7 values, expected 2 x 4/);
      const other = await create({});
      other.dispose();
      await expectThrow('disposed', () => other.propagate([randomLayer(new Rand(1), 4, 2)], new Float32Array(8), 2), /disposed|lost/);
    },
  },
];

/** sum over rows of B (K x N), float64, and sum |B| for the tolerance */
function colsum64(B: Float32Array, K: number, N: number): { sum: Float64Array; mag: Float64Array } {
  const sum = new Float64Array(N);
  const mag = new Float64Array(N);
  for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) {
    sum[n]! += B[k * N + n]!;
    mag[n]! += Math.abs(B[k * N + n]!);
  }
  return { sum, mag };
}

const CSUM_SHAPES: readonly [number, number, number][] = [[1, 1, 1], [7, 13, 5], [65, 33, 129], [130, 17, 67]];
const CSUM_VEC_SHAPES: readonly [number, number, number][] = [[68, 36, 132], [4, 200, 12]];

/** Fused kernels, pooling and bundles: the whole-step work (issue 16, part 2). */
const stepCases: Case[] = [
  ...Object.entries(TILES).map(([tileName, tile]): Case => ({
    name: `matmul tn + column sums of B (CSUM), ${tileName}: dW and db of one product, alpha/beta on both`,
    run: async ({ backend }) => {
      for (const [M, K, N] of tile.vec4 ? [...CSUM_SHAPES, ...CSUM_VEC_SHAPES] : CSUM_SHAPES) {
        if (tile.vec4 && vec4Fits('tn', M, K, N) !== (M % 4 === 0 && N % 4 === 0)) throw new Error('vec4Fits changed');
        const seed = freshSeed();
        const r = new Rand(seed);
        const A = r.floats(K * M);
        const B = r.floats(K * N);
        const ref = matmul64('tn', A, B, M, K, N);
        const cs = colsum64(B, K, N);
        const what = `tn ${M}x${K}x${N} ${tileName} (seed ${seed})`;
        // plain: C = A^T B, S = column sums (S poisoned first)
        const plain = await runMatmul(backend.gpu, only(tile), 'tn', 'axpby', A, B, M, K, N, { colsum: true });
        expectClose(`${what} C`, plain.C, ref.C, dotTol(ref.mag));
        expectClose(`${what} colsum`, plain.S!, cs.sum, (i) => 1e-5 * cs.mag[i]! + 1e-6);
        // accumulate: both outputs get alpha * new + beta * old
        const C0 = r.floats(M * N);
        const S0 = r.floats(N);
        const acc = await runMatmul(backend.gpu, only(tile), 'tn', 'axpby', A, B, M, K, N, { colsum: true, C0, S0, alpha: -1, beta: 1 });
        expectClose(`${what} C accumulated`, acc.C, ref.C.map((c, i) => C0[i]! - c), (i) => dotTol(ref.mag)(i) + 1e-6 * Math.abs(C0[i]!));
        expectClose(`${what} colsum accumulated`, acc.S!, cs.sum.map((c, i) => S0[i]! - c), (i) => 1e-5 * cs.mag[i]! + 1e-6 * (1 + Math.abs(S0[i]!)));
      }
    },
  })),
  {
    name: 'matmul CSUM: refused outside tn/axpby and beside samples',
    run: async ({ backend }) => {
      const gpu = backend.gpu;
      const b = gpu.scratch('test/b', 64);
      const rec = gpu.record('test/bad-csum');
      await expectThrow('nn + colsum', async () => matmul(rec, backend.tuning, { form: 'nn', epi: 'axpby', C: b, A: b, B: b, colsum: b, M: 2, K: 2, N: 2 }, dummies(gpu)), /tn form and the axpby epilogue/);
      await expectThrow('colsum + S', async () => matmul(rec, backend.tuning, { form: 'tn', epi: 'axpby', C: b, A: b, B: b, S: b, colsum: b, M: 2, K: 2, N: 2 }, dummies(gpu)), /share binding 1/);
      b.destroy();
    },
  },
  {
    name: 'dense_softmax: logits + softmax (+ delta, loss, hits) in one dispatch equal the float64 reference, stable at logits of +-400',
    run: async ({ backend }) => {
      const gpu = backend.gpu;
      const seed = freshSeed();
      const r = new Rand(seed);
      for (const [M, nIn, K, biasScale] of [[1, 1, 1, 1], [67, 131, 10, 1], [5, 70, DENSE_SOFTMAX_KMAX, 400], [130, 2000, 10, 2]] as const) {
        const X = r.floats(M * nIn, 0, 1);
        const W = r.floats(nIn * K, -0.1, 0.1);
        const bias = r.floats(K, -biasScale, biasScale);
        const labels = r.ints(M, K);
        const rec = gpu.record('test/dense-softmax');
        const d = dummies(gpu);
        const [xb, wb, bb, lb] = [rec.own(gpu.upload('test/X', X)), rec.own(gpu.upload('test/W', W)), rec.own(gpu.upload('test/bias', bias)), rec.own(gpu.upload('test/labels', labels))];
        const probs = rec.own(gpu.scratch('test/probs', M * K, true));
        const delta = rec.own(gpu.scratch('test/delta', M * K, true));
        const stats = rec.own(gpu.scratch('test/stats', M * 2, true));
        denseSoftmax(rec, { Pr: probs, X: xb, W: wb, bias: bb, M, nIn, K }, d);
        denseSoftmax(rec, { Pr: delta, stats, X: xb, W: wb, bias: bb, labels: lb, M, nIn, K }, d);
        const [ph, dh, sh] = await rec.finish([[probs, M * K], [delta, M * K], [stats, M * 2]]);
        const z = matmul64('nn', X, W, M, nIn, K);
        const Z = z.C.map((v, i) => v + bias[i % K]!);
        const ref = softmax64(Z, M, K);
        // the logits carry a dot product's error (1e-5 of sum |x w|); softmax's derivative is at most 1/2
        const zTol = (i: number): number => 1e-5 * z.mag[i]! + 1e-6 * (1 + Math.abs(Z[i]!));
        const what = `dense_softmax ${M}x${nIn}x${K} (seed ${seed})`;
        expectClose(`${what} probs`, ph!, ref.probs, (i) => zTol(i) + 1e-6);
        expectClose(`${what} delta`, dh!, ref.probs.map((p, i) => p - (labels[Math.floor(i / K)] === i % K ? 1 : 0)), (i) => zTol(i) + 1e-6);
        const st = new Float64Array(M * 2);
        let rowTol = 0;
        for (let i = 0; i < M; i++) {
          st[2 * i] = -ref.logp[i * K + labels[i]!]!;
          st[2 * i + 1] = ref.argmax[i] === labels[i] ? 1 : 0;
          rowTol = Math.max(rowTol, ...Array.from({ length: K }, (_, k) => zTol(i * K + k)));
        }
        // a hit may differ only where two logits are within rounding of each other: none are here (checked)
        for (let i = 0; i < M; i++) {
          const sorted = Array.from(Z.subarray(i * K, (i + 1) * K)).sort((a, b) => b - a);
          if (K > 1 && sorted[0]! - sorted[1]! < 4 * rowTol) st[2 * i + 1] = sh![2 * i + 1]!;
        }
        expectClose(`${what} loss and hits`, sh!, st, (i) => (i % 2 ? 0 : 2 * rowTol + 1e-5 * (1 + st[i]!)));
      }
      await expectThrow('17 classes', async () => denseSoftmax(gpu.record('test/k17'), { Pr: gpu.scratch('t', 17), X: gpu.scratch('t', 17), W: gpu.scratch('t', 17), bias: gpu.scratch('t', 17), M: 1, nIn: 1, K: DENSE_SOFTMAX_KMAX + 1 }, dummies(gpu)), /use matmul \+ softmaxXent/);
    },
  },
  {
    name: `backend backprop and predict with ${DENSE_SOFTMAX_KMAX + 1} classes (wider than dense_softmax: matmul + softmax_xent) equal the float64 reference`,
    run: async ({ backend }) => {
      const seed = freshSeed();
      const r = new Rand(seed);
      const B = 11;
      const sizes = [23, 19, DENSE_SOFTMAX_KMAX + 1];
      const layers = sizes.slice(1).map((n, i) => randomLayer(r, sizes[i]!, n, 0.5));
      const x = r.floats(B * 23, 0, 1);
      const labels = Uint8Array.from(r.ints(B, DENSE_SOFTMAX_KMAX + 1));
      const got = await backend.backprop({ layers, x, labels, batch: B });
      const ref = backpropRef(layers, x, labels, B);
      layers.forEach((l, i) => {
        expectClose(`dW${i} (seed ${seed})`, got.dW[i]!, ref.dW[i]!, (j) => 1e-5 * (B + Math.abs(ref.dW[i]![j]!)));
        expectClose(`db${i} (seed ${seed})`, got.db[i]!, ref.db[i]!, (j) => 1e-5 * (B + Math.abs(ref.db[i]![j]!)));
      });
      expectClose(`loss (seed ${seed})`, [got.loss], [ref.loss], () => 1e-5 * ref.loss);
      if (got.correct !== ref.correct) throw new Error(`correct ${got.correct}, expected ${ref.correct} (seed ${seed})`);
      expectClose(`predict (seed ${seed})`, await backend.predict(layers, x, B), ref.probs, () => 1e-5);
    },
  },
  {
    name: 'backend bundles: cd1Bundle and backpropBundle equal the sum of the float64 reference of each task, in one submit with one task\'s dispatches',
    run: async ({ backend }) => {
      const seed = freshSeed();
      const r = new Rand(seed);
      // CD-1: 3 tasks (5, 1 and 9 examples) under one RBM with a lower layer
      const lower = [randomLayer(r, 31, 17, 0.5)];
      const rbm: RbmLayer = { V: 17, H: 13, W: r.floats(17 * 13, -0.5, 0.5), b: r.floats(17, -0.5, 0.5), c: r.floats(13, -0.5, 0.5) };
      const Bs = [5, 1, 9];
      const xs = Bs.map((B) => r.floats(B * 31, 0, 1));
      const ids = Bs.map((B) => r.ints(B, 60000));
      let rngSeed = r.ints(1, 2 ** 32)[0]!;
      let refs = Bs.map((B, t) => cd1Ref(lower, rbm, xs[t]!, B, ids[t]!, rngSeed, 4));
      while (refs.some((x) => x.margin <= 1e-4)) refs = Bs.map((B, t) => cd1Ref(lower, rbm, xs[t]!, B, ids[t]!, ++rngSeed, 4));
      const reqs = Bs.map((B, t) => ({ lower, rbm, x: xs[t]!, batch: B, exampleIds: ids[t]!, rng: { seed: rngSeed, iteration: 4 }, weightsVersion: 7 }));
      const single = { ...backend.stats };
      await backend.cd1(reqs[2]!);
      const oneTask = backend.stats.dispatches - single.dispatches;
      const before = { ...backend.stats };
      const got = await backend.cd1Bundle(reqs);
      if (backend.stats.submits - before.submits !== 1) throw new Error(`cd1Bundle: ${backend.stats.submits - before.submits} submits, expected 1`);
      if (backend.stats.dispatches - before.dispatches !== oneTask) throw new Error(`cd1Bundle: ${backend.stats.dispatches - before.dispatches} dispatches, one task takes ${oneTask}`);
      const B = 15;
      const sum = (f: (x: (typeof refs)[number]) => Float64Array): Float64Array => refs.map(f).reduce((a, b) => a.map((v, i) => v + b[i]!));
      const what = `cd1Bundle 5+1+9 (seed ${seed})`;
      const dW = sum((x) => x.dW);
      expectClose(`${what} dW`, got.dW, dW, (i) => 1e-5 * (2 * B + Math.abs(dW[i]!)));
      expectClose(`${what} db`, got.db, sum((x) => x.db), () => 1e-5 * 2 * B);
      expectClose(`${what} dc`, got.dc, sum((x) => x.dc), () => 1e-5 * 2 * B);
      const rec = refs.reduce((a, x) => a + x.reconError, 0);
      expectClose(`${what} reconError`, [got.reconError], [rec], () => 1e-5 * (B + rec));
      if (got.count !== B) throw new Error(`${what}: count ${got.count}`);
      await expectThrow('other weights', () => backend.cd1Bundle([reqs[0]!, { ...reqs[1]!, rbm: { ...rbm, W: rbm.W.slice() } }]), /other weights than request 0/);
      await expectThrow('other iteration', () => backend.cd1Bundle([reqs[0]!, { ...reqs[1]!, rng: { seed: rngSeed, iteration: 5 } }]), /seed\/iteration/);
      // backprop: 3 tasks (4, 0 and 7 examples) of one MLP
      const sizes = [29, 23, 19, 10];
      const layers = sizes.slice(1).map((n, i) => randomLayer(r, sizes[i]!, n, 0.5));
      const Bb = [4, 0, 7];
      const bx = Bb.map((n) => r.floats(n * 29, 0, 1));
      const bl = Bb.map((n) => Uint8Array.from(r.ints(n, 10)));
      const bref = Bb.map((n, t) => backpropRef(layers, bx[t]!, bl[t]!, n));
      const b0 = { ...backend.stats };
      const bg = await backend.backpropBundle(Bb.map((n, t) => ({ layers, x: bx[t]!, labels: bl[t]!, batch: n })));
      if (backend.stats.submits - b0.submits !== 1) throw new Error(`backpropBundle: ${backend.stats.submits - b0.submits} submits, expected 1`);
      // 3L - 1 dispatches for L = 3 layers (webgpu-backend.ts's header), as for one task
      if (backend.stats.dispatches - b0.dispatches !== 8) throw new Error(`backpropBundle: ${backend.stats.dispatches - b0.dispatches} dispatches, expected 8`);
      layers.forEach((_, i) => {
        const dWi = bref.map((x) => x.dW[i]!).reduce((a, b) => a.map((v, j) => v + b[j]!));
        const dbi = bref.map((x) => x.db[i]!).reduce((a, b) => a.map((v, j) => v + b[j]!));
        expectClose(`backpropBundle dW${i} (seed ${seed})`, bg.dW[i]!, dWi, (j) => 1e-5 * (11 + Math.abs(dWi[j]!)));
        expectClose(`backpropBundle db${i} (seed ${seed})`, bg.db[i]!, dbi, (j) => 1e-5 * (11 + Math.abs(dbi[j]!)));
      });
      const loss = bref.reduce((a, x) => a + x.loss, 0);
      expectClose(`backpropBundle loss (seed ${seed})`, [bg.loss], [loss], () => 1e-5 * loss);
      const correct = bref.reduce((a, x) => a + x.correct, 0);
      if (bg.correct !== correct || bg.count !== 11) throw new Error(`backpropBundle: correct ${bg.correct}/${bg.count}, expected ${correct}/11 (seed ${seed})`);
      await expectThrow('other layers', () => backend.backpropBundle([{ layers, x: bx[0]!, labels: bl[0]!, batch: 4 }, { layers: layers.slice(0, 2), x: bx[0]!, labels: bl[0]!, batch: 4 }]), /other weights than request 0/);
    },
  },
  {
    name: 'backend pool: a second task of the same shapes creates no buffer and no bind group, and gives the same numbers',
    run: async ({ backend }) => {
      const seed = freshSeed();
      const r = new Rand(seed);
      const sizes = [37, 29, 23, 7];
      const layers = sizes.slice(1).map((n, i) => randomLayer(r, sizes[i]!, n, 0.5));
      const x = r.floats(13 * 37, 0, 1);
      const labels = Uint8Array.from(r.ints(13, 7));
      const req = { layers, x, labels, batch: 13, weightsVersion: 3 };
      const first = await backend.backprop(req);
      const c0 = { ...backend.gpu.counters };
      const second = await backend.backprop(req);
      const c1 = backend.gpu.counters;
      if (c1.buffersCreated !== c0.buffersCreated) throw new Error(`second task created ${c1.buffersCreated - c0.buffersCreated} buffers`);
      if (c1.bindGroupsCreated !== c0.bindGroupsCreated) throw new Error(`second task created ${c1.bindGroupsCreated - c0.bindGroupsCreated} bind groups`);
      if (c1.submits - c0.submits !== 1) throw new Error(`second task: ${c1.submits - c0.submits} submits`);
      // same kernels on the same data: bit for bit (the pooled buffers' old contents must not leak in)
      first.dW.forEach((d, i) => expectClose(`dW${i} again (seed ${seed})`, second.dW[i]!, d, () => 0));
      if (second.loss !== first.loss || second.correct !== first.correct) throw new Error(`loss/correct changed: ${first.loss}/${first.correct} then ${second.loss}/${second.correct}`);
    },
  },
];
CASES.push(...stepCases);

/** Cases that compare with the CPU backend (core/cpu), the project's reference implementation. */
const cpuCases: Case[] = [
  {
    name: 'cpu agreement: matmul nn/tn/nt, bias + sigmoid, Bernoulli samples, softmax cross-entropy, column sums vs the cpu kernels',
    run: async ({ backend }) => {
      const gpu = backend.gpu;
      const seed = freshSeed();
      const r = new Rand(seed);
      for (const form of ['nn', 'tn', 'nt'] as const) {
        for (const [M, K, N] of [[1, 1, 1], [7, 13, 5], [67, 45, 23]] as const) {
          const A = r.floats(M * K);
          const B = r.floats(K * N);
          const want = new Float32Array(M * N);
          cpu.matmul(form, A, B, want, M, K, N);
          const { C } = await runMatmul(gpu, backend.tuning, form, 'axpby', A, B, M, K, N);
          const { mag: absC } = matmul64(form, A, B, M, K, N);
          // both sides round in float32: twice the single-sided bound
          expectClose(`matmul ${form} ${M}x${K}x${N} vs cpu (seed ${seed})`, C, want, (i) => 2e-5 * absC[i]! + 2e-6);
        }
      }
      const [M, K, N] = [29, 31, 37];
      const A = r.floats(M * K, 0, 1);
      const B = r.floats(K * N, -0.5, 0.5);
      const bias = r.floats(N, -0.5, 0.5);
      const ids = r.ints(M, 60000);
      const out = await runMatmul(gpu, backend.tuning, 'nn', 'biasSigmoidSample', A, B, M, K, N, { aux: bias, ids, seed: 7, iteration: 11 });
      const h = new Float32Array(M * N);
      cpu.matmul('nn', A, B, h, M, K, N);
      cpu.biasSigmoid(h, bias, h, M, N);
      expectClose(`bias + sigmoid vs cpu (seed ${seed})`, out.C, h, () => 2e-6);
      const s = new Float32Array(M * N);
      cpu.sampleBernoulli(h, s, M, N, 7, 11, ids);
      for (let i = 0; i < M * N; i++) {
        const u = uniform(7, 11, ids[Math.floor(i / N)]!, i % N);
        if (Math.abs(h[i]! - u) > 1e-5 && out.S![i] !== s[i]) throw new Error(`sample ${i}: webgpu ${out.S![i]}, cpu ${s[i]} (h ${h[i]}, u ${u}; seed ${seed})`);
      }
      const [B2, Kc] = [23, 10];
      const Z = r.floats(B2 * Kc, -8, 8);
      const labels = Uint8Array.from(r.ints(B2, Kc));
      const D = new Float32Array(B2 * Kc);
      const ce = cpu.softmaxCrossEntropy(Z, labels, D, B2, Kc);
      const rec = gpu.record('test/softmax-vs-cpu');
      const d = dummies(gpu);
      const delta = rec.own(gpu.scratch('test/delta', B2 * Kc, true));
      const stats = rec.own(gpu.scratch('test/stats', B2 * 2, true));
      const sums = rec.own(gpu.scratch('test/colsum', Kc, true));
      softmaxXent(rec, delta, rec.own(gpu.upload('test/Z', Z)), B2, Kc, d, rec.own(gpu.upload('test/labels', Uint32Array.from(labels))), stats);
      colsum(rec, sums, delta, B2, Kc, d);
      const [dh, sh, ch] = await rec.finish([[delta, B2 * Kc], [stats, B2 * 2], [sums, Kc]]);
      expectClose(`softmax delta vs cpu (seed ${seed})`, dh!, D, () => 2e-6);
      let loss = 0;
      let correct = 0;
      for (let i = 0; i < B2; i++) {
        loss += sh![2 * i]!;
        correct += sh![2 * i + 1]!;
      }
      expectClose(`loss vs cpu (seed ${seed})`, [loss], [ce.loss], () => 1e-5 * ce.loss);
      if (correct !== ce.correct) throw new Error(`correct: webgpu ${correct}, cpu ${ce.correct} (seed ${seed})`);
      const db = new Float32Array(Kc);
      cpu.columnSums(D, B2, Kc, db);
      expectClose(`column sums vs cpu (seed ${seed})`, ch!, db, () => 1e-5 * B2);
    },
  },
  {
    name: 'cpu agreement: whole CD-1 task (B=21, 40 -> 33, RBM 33x27) and whole backprop task (B=19, 40-33-27-10) equal the cpu backend',
    run: async ({ backend }) => {
      const ref = await cpu.createCpuBackend();
      const seed = freshSeed();
      const r = new Rand(seed);
      const B = 21;
      const lower = [randomLayer(r, 40, 33, 0.5)];
      const rbm: RbmLayer = { V: 33, H: 27, W: r.floats(33 * 27, -0.5, 0.5), b: r.floats(33, -0.5, 0.5), c: r.floats(27, -0.5, 0.5) };
      const x = r.floats(B * 40, 0, 1);
      const exampleIds = r.ints(B, 60000);
      // Counters whose draws land clear of the probabilities, so rounding flips no sample.
      let rngSeed = r.ints(1, 2 ** 32)[0]!;
      while (cd1Ref(lower, rbm, x, B, exampleIds, rngSeed, 5).margin <= 1e-4) rngSeed++;
      const req = { lower, rbm, x, batch: B, exampleIds, rng: { seed: rngSeed, iteration: 5 } };
      const [g, c] = [await backend.cd1(req), await ref.cd1(req)];
      expectClose(`cd1 dW vs cpu (seed ${seed})`, g.dW, c.dW, (i) => 1e-5 * (2 * B + Math.abs(c.dW[i]!)));
      expectClose(`cd1 db vs cpu (seed ${seed})`, g.db, c.db, () => 2e-5 * B);
      expectClose(`cd1 dc vs cpu (seed ${seed})`, g.dc, c.dc, () => 2e-5 * B);
      expectClose(`cd1 reconError vs cpu (seed ${seed})`, [g.reconError], [c.reconError], () => 1e-5 * (B + c.reconError));
      const layers = [randomLayer(r, 40, 33, 0.5), randomLayer(r, 33, 27, 0.5), randomLayer(r, 27, 10, 0.5)];
      const labels = Uint8Array.from(r.ints(19, 10));
      const xb = r.floats(19 * 40, 0, 1);
      const [gb, cb] = [await backend.backprop({ layers, x: xb, labels, batch: 19 }), await ref.backprop({ layers, x: xb, labels, batch: 19 })];
      layers.forEach((_, i) => {
        expectClose(`backprop dW${i} vs cpu (seed ${seed})`, gb.dW[i]!, cb.dW[i]!, (j) => 1e-5 * (19 + Math.abs(cb.dW[i]![j]!)));
        expectClose(`backprop db${i} vs cpu (seed ${seed})`, gb.db[i]!, cb.db[i]!, () => 2e-5 * 19);
      });
      expectClose(`backprop loss vs cpu (seed ${seed})`, [gb.loss], [cb.loss], () => 1e-5 * cb.loss);
      if (gb.correct !== cb.correct) throw new Error(`correct: webgpu ${gb.correct}, cpu ${cb.correct} (seed ${seed})`);
      const [pg, pc] = [await backend.predict(layers, xb, 19), await ref.predict(layers, xb, 19)];
      expectClose(`predict vs cpu (seed ${seed})`, pg, pc, () => 2e-6);
      ref.dispose();
    },
  },
  {
    name: 'whole tasks at the DBN shapes (784-500-500-2000-10, B=17, every phase) agree with the cpu backend within the verification tolerance',
    run: async ({ backend }) => {
      const ref = await cpu.createCpuBackend();
      const seed = freshSeed() % 100_000;
      const rows = await wholeTaskAgreement(ref, backend, { batch: 17, weightScale: 0.1, iteration: 1 + (seed % 50), seed });
      for (const r of rows) {
        console.log(`agreement ${backend.adapter}: ${r.phase}, B=${r.batch}: worst relative L2 ${r.comparison.worstRelL2.toExponential(2)} (${r.comparison.worstTensor}), loss ${r.comparison.lossRel.toExponential(2)}`);
        if (!r.comparison.agree) throw new Error(`${r.phase} (seed ${seed}): webgpu and cpu disagree beyond the tolerance ${JSON.stringify(DEFAULT_TOLERANCE)}: ${r.comparison.detail}`);
      }
      ref.dispose();
    },
  },
];
CASES.push(...cpuCases);

async function expectThrow(what: string, f: () => Promise<unknown>, re: RegExp): Promise<void> {
  try {
    await f();
  } catch (e) {
    if (!(e instanceof GpuError)) throw new Error(`${what}: threw ${(e as Error).name}, expected GpuError: ${(e as Error).message}`);
    if (!re.test((e as Error).message)) throw new Error(`${what}: message "${(e as Error).message}" does not match ${re}`);
    return;
  }
  throw new Error(`${what}: did not throw`);
}

function forwardSigmoid(layers: readonly DenseLayer[], x: Float32Array, B: number): Float64Array {
  let a = Float64Array.from(x);
  for (const l of layers) {
    const { C } = matmul64('nn', a, l.W, B, l.nIn, l.nOut);
    a = C.map((z, i) => sigmoid64(z + l.b[i % l.nOut]!));
  }
  return a;
}

async function checkCd1(backend: WebGpuBackend, B: number, lowerSizes: number[], V: number, H: number): Promise<void> {
  const seed = freshSeed();
  const r = new Rand(seed);
  const sizes = [...lowerSizes, V];
  const lower = lowerSizes.map((n, i) => randomLayer(r, n, sizes[i + 1]!, 0.5));
  const rbm: RbmLayer = { V, H, W: r.floats(V * H, -0.5, 0.5), b: r.floats(V, -0.5, 0.5), c: r.floats(H, -0.5, 0.5) };
  const x = r.floats(B * sizes[0]!, 0, 1);
  const exampleIds = r.ints(B, 60000);
  // Pick counters whose draws all land clear of their probabilities (> 1e-4), so
  // float rounding cannot flip a sample and the float64 reference must agree exactly.
  let rngSeed = r.ints(1, 2 ** 32)[0]!;
  let ref = cd1Ref(lower, rbm, x, B, exampleIds, rngSeed, 3);
  while (ref.margin <= 1e-4) ref = cd1Ref(lower, rbm, x, B, exampleIds, ++rngSeed, 3);
  const got = await backend.cd1({ lower, rbm, x, batch: B, exampleIds, rng: { seed: rngSeed, iteration: 3 } });
  const what = `cd1 B=${B} ${[...lowerSizes, V, H].join('-')} (seed ${seed})`;
  expectClose(`${what} dW`, got.dW, ref.dW, (i) => 1e-5 * (2 * B + Math.abs(ref.dW[i]!)));
  expectClose(`${what} db`, got.db, ref.db, (i) => 1e-5 * (B + Math.abs(ref.db[i]!)));
  expectClose(`${what} dc`, got.dc, ref.dc, (i) => 1e-5 * (B + Math.abs(ref.dc[i]!)));
  expectClose(`${what} reconError`, [got.reconError], [ref.reconError], () => 1e-5 * (B + ref.reconError));
  if (got.count !== B) throw new Error(`${what}: count ${got.count}`);
}
