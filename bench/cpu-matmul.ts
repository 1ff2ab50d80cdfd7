/**
 * GFLOP/s of the CPU backend's matmul at the DBN's shapes (batch 100,
 * 784-500-500-2000-10) in the three forms as fine-tuning uses them:
 *   nn  forward            Z  = X W      (B x nIn)·(nIn x nOut)
 *   tn  weight gradient    dW = Xᵀ D     (nIn x B)·(B x nOut)
 *   nt  backprop delta     dX = D Wᵀ     (B x nOut)·(nOut x nIn)
 * against TF.js (wasm backend, and the plain-JS cpu backend) on the same
 * shapes in the same run, printed with ratios (ours / theirs; > 1 is faster).
 *
 *   nice npx tsx bench/cpu-matmul.ts [--quick]
 */
import { jsEngine, type MatmulForm } from '../core/cpu/index.ts';
import { createSimdEngine } from '../core/cpu/simd.ts';
import { rate, tf, useTfBackend } from './cpu-tfjs.ts';

const quick = process.argv.includes('--quick');
const B = 100;
const LAYERS: [number, number][] = [
  [784, 500],
  [500, 500],
  [500, 2000],
  [2000, 10],
];

interface Case {
  readonly label: string;
  readonly form: MatmulForm;
  readonly M: number;
  readonly K: number;
  readonly N: number;
}

const cases: Case[] = [];
for (const [nIn, nOut] of LAYERS) cases.push({ label: `fwd  ${nIn}x${nOut}`, form: 'nn', M: B, K: nIn, N: nOut });
for (const [nIn, nOut] of LAYERS) cases.push({ label: `dW   ${nIn}x${nOut}`, form: 'tn', M: nIn, K: B, N: nOut });
for (const [nIn, nOut] of LAYERS) cases.push({ label: `dX   ${nIn}x${nOut}`, form: 'nt', M: B, K: nOut, N: nIn });

function gflops(c: Case, perSecond: number): number {
  return (2 * c.M * c.K * c.N * perSecond) / 1e9;
}

function randomInto(a: Float32Array): Float32Array {
  for (let i = 0; i < a.length; i++) a[i] = Math.random() * 2 - 1;
  return a;
}

const simd = await createSimdEngine();
if (!simd) throw new Error('WebAssembly SIMD is unavailable in this runtime');
const js = jsEngine();
const roundMs = quick ? 100 : 250;

const results: { c: Case; simd: number; js: number; tfWasm: number; tfCpu: number }[] = [];
for (const c of cases) {
  const [a, b, out] = simd.workspace.reserve([c.M * c.K, c.K * c.N, c.M * c.N]) as [Float32Array, Float32Array, Float32Array];
  randomInto(a);
  randomInto(b);
  const simdRate = rate(() => simd.matmul(c.form, a, b, out, c.M, c.K, c.N), roundMs);
  const [ja, jb, jc] = js.workspace.reserve([c.M * c.K, c.K * c.N, c.M * c.N]) as [Float32Array, Float32Array, Float32Array];
  ja.set(a);
  jb.set(b);
  const jsRate = rate(() => js.matmul(c.form, ja, jb, jc, c.M, c.K, c.N), roundMs, 3);
  results.push({ c, simd: gflops(c, simdRate), js: gflops(c, jsRate), tfWasm: 0, tfCpu: 0 });
}

const tfNames: string[] = [];
for (const backend of ['wasm', 'cpu'] as const) {
  tfNames.push(await useTfBackend(backend));
  for (const r of results) {
    const { form, M, K, N } = r.c;
    // TF.js operands stored as our kernels read them; transposes by flag, as a TF.js model would.
    const A = tf.randomUniform(form === 'tn' ? [K, M] : [M, K], -1, 1);
    const Bm = tf.randomUniform(form === 'nt' ? [N, K] : [K, N], -1, 1);
    const perSecond = rate(() => {
      const C = tf.matMul(A, Bm, form === 'tn', form === 'nt');
      C.dataSync();
      C.dispose();
    }, roundMs, backend === 'cpu' ? 3 : 5);
    A.dispose();
    Bm.dispose();
    if (backend === 'wasm') r.tfWasm = gflops(r.c, perSecond);
    else r.tfCpu = gflops(r.c, perSecond);
  }
}

const f = (x: number) => x.toFixed(2).padStart(7);
console.log(`CPU backend matmul, batch ${B}, GFLOP/s (higher is better); ours: ${simd.name} and ${js.name}`);
console.log(`baselines: ${tfNames.join('; ')}`);
console.log(`shape            form    M    K    N |   ours  ours-ts tfjs-wasm tfjs-cpu | ours/wasm ours/cpu`);
for (const r of results) {
  const { label, form, M, K, N } = r.c;
  console.log(
    `${label.padEnd(16)} ${form}  ${String(M).padStart(4)} ${String(K).padStart(4)} ${String(N).padStart(4)} |` +
      `${f(r.simd)}  ${f(r.js)}  ${f(r.tfWasm)}  ${f(r.tfCpu)} |  ${f(r.simd / r.tfWasm)}x ${f(r.simd / r.tfCpu)}x`,
  );
}
const total = (k: 'simd' | 'js' | 'tfWasm' | 'tfCpu') => {
  // time for one pass over all shapes: sum of flops / sum of seconds
  let flop = 0;
  let sec = 0;
  for (const r of results) {
    const fl = 2 * r.c.M * r.c.K * r.c.N;
    flop += fl;
    sec += fl / (r[k] * 1e9);
  }
  return flop / sec / 1e9;
};
console.log(
  `all 12 (one fwd+bwd's worth) |${f(total('simd'))}  ${f(total('js'))}  ${f(total('tfWasm'))}  ${f(total('tfCpu'))} |  ${f(total('simd') / total('tfWasm'))}x ${f(total('simd') / total('tfCpu'))}x`,
);
