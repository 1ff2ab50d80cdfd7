/**
 * GFLOP/s of Tessera's WGSL matmul in its three forms at the DBN's shapes
 * (batch 100 by 784x500, 500x500, 500x2000) and at 1024^3, beside
 * @tensorflow/tfjs-backend-webgpu's tf.matMul on the same adapter in the same run.
 *
 *   nice node_modules/.bin/deno run -A bench/webgpu-matmul.ts [--big] [--sweep | --presets] [--ms 300] [--limit n]
 *
 * --big adds 4096^3; --sweep times several tile configurations at the largest
 * shape first and uses the best for the table. --presets (real GPUs) instead
 * times every shape with GPU_TUNING_SCALAR (the tuning before matmul_vec4),
 * GPU_TUNING and a list of candidate tiles, and prints the best tile per shape
 * and per shape class (batch 100, 1024^3, 4096^3). TFJS_MODULE=path loads tfjs
 * from a bundle (bench/gpu.sh carries one) instead of node_modules.
 * Timing: R dispatches in one submit, R chosen so a batch takes ~--ms;
 * the median of 5 batches after a warm-up; wall clock to onSubmittedWorkDone.
 */
import {
  createWebGpuBackend,
  type Gpu,
  GPU_TUNING,
  GPU_TUNING_SCALAR,
  matmulKernel,
  matmulSpec,
  matmulTile,
  type MatmulForm,
  type MatmulTile,
  type MatmulTuning,
} from '../core/webgpu/index.ts';

// Deno's globals, typed here so the repository's tsc (which has no Deno types) checks this file too.
const Deno = (globalThis as unknown as { Deno: { args: string[]; env: { get(k: string): string | undefined }; cwd(): string; exit(code: number): never } }).Deno;
const args = Deno.args;
const flag = (f: string): boolean => args.includes(f);
const opt = (f: string, d: number): number => (args.includes(f) ? Number(args[args.indexOf(f) + 1]) : d);
const targetMs = opt('--ms', 300);

interface Shape {
  readonly name: string;
  readonly form: MatmulForm;
  readonly M: number;
  readonly K: number;
  readonly N: number;
}

const shapes: Shape[] = [];
for (const [nIn, nOut] of [[784, 500], [500, 500], [500, 2000]] as const) {
  shapes.push({ name: `fwd 100x${nIn}x${nOut}`, form: 'nn', M: 100, K: nIn, N: nOut });
  shapes.push({ name: `dW ${nIn}x100x${nOut}`, form: 'tn', M: nIn, K: 100, N: nOut });
  shapes.push({ name: `back 100x${nOut}x${nIn}`, form: 'nt', M: 100, K: nOut, N: nIn });
}
const cubes = flag('--big') ? [1024, 4096] : [1024];
for (const n of cubes) for (const form of ['nn', 'tn', 'nt'] as const) shapes.push({ name: `${n}^3`, form, M: n, K: n, N: n });
// --limit n: only the first n shapes (quick checks of the script itself).
if (flag('--limit')) shapes.splice(opt('--limit', shapes.length));

function fill(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    a[i] = s / 4294967296 - 0.5;
  }
  return a;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Times `batch(R)` (which must finish all R runs before resolving): median seconds per run. */
async function timeRuns(batch: (R: number) => Promise<void>): Promise<number> {
  await batch(1);
  let t = performance.now();
  await batch(1);
  const one = Math.max(0.01, performance.now() - t);
  const R = Math.max(1, Math.min(2000, Math.round(targetMs / one)));
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    t = performance.now();
    await batch(R);
    times.push((performance.now() - t) / R / 1000);
  }
  return median(times);
}

const backend = await createWebGpuBackend();
const gpu: Gpu = backend.gpu;
const device = gpu.device;

async function oursTime(s: Shape, tuning: MatmulTuning): Promise<number> {
  const tile = matmulTile(tuning, s.M, s.N);
  const pipeline = await gpu.pipeline(matmulSpec(s.form, 'axpby', tile, [s.M, s.K, s.N]));
  const A = gpu.upload('bench/A', fill(s.M * s.K, 1));
  const B = gpu.upload('bench/B', fill(s.K * s.N, 2));
  const C = gpu.scratch('bench/C', s.M * s.N);
  const dummy = [gpu.scratch('bench/rw', 4), gpu.scratch('bench/ro', 4)];
  const u = new ArrayBuffer(32);
  new Uint32Array(u).set([s.M, s.K, s.N, 0, 0]);
  new Float32Array(u).set([1, 0], 5);
  const ub = device.createBuffer({ label: 'bench/uniforms', size: 32, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(ub, 0, u);
  const bg = device.createBindGroup({
    label: 'bench',
    layout: pipeline.getBindGroupLayout(0),
    entries: [C, dummy[0]!, A, B, dummy[1]!, dummy[1]!, ub].map((buffer, binding) => ({ binding, resource: { buffer } })),
  });
  const gx = Math.ceil(s.N / (tile.wgX * tile.tn));
  const gy = Math.ceil(s.M / (tile.wgY * tile.tm));
  const sec = await timeRuns(async (R) => {
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bg);
    for (let i = 0; i < R; i++) pass.dispatchWorkgroups(gx, gy, 1);
    pass.end();
    device.queue.submit([enc.finish()]);
    await device.queue.onSubmittedWorkDone();
  });
  for (const b of [A, B, C, ub, ...dummy]) b.destroy();
  return sec;
}

// deno-lint-ignore no-explicit-any
type Tf = any;
async function loadTf(): Promise<Tf | null> {
  try {
    const path = Deno.env.get('TFJS_MODULE');
    let tf: Tf;
    if (path) {
      tf = await import(new URL(path, `file://${Deno.cwd()}/`).href);
    } else {
      tf = await import('@tensorflow/tfjs-core');
      await import('@tensorflow/tfjs-backend-webgpu');
    }
    if (!(await tf.setBackend('webgpu'))) throw new Error('setBackend("webgpu") failed');
    await tf.ready();
    return tf;
  } catch (e) {
    console.log(`tfjs webgpu unavailable: ${(e as Error).message}`);
    return null;
  }
}

async function tfTime(tf: Tf, s: Shape): Promise<number> {
  const a = tf.tensor(fill(s.M * s.K, 1), s.form === 'tn' ? [s.K, s.M] : [s.M, s.K]);
  const b = tf.tensor(fill(s.K * s.N, 2), s.form === 'nt' ? [s.N, s.K] : [s.K, s.N]);
  const sec = await timeRuns(async (R) => {
    // tfjs may skip products nobody reads, so every product feeds a running
    // sum that is read back (the adds cost M*N each, under 1% of a product).
    let acc = tf.matMul(a, b, s.form === 'tn', s.form === 'nt');
    for (let i = 1; i < R; i++) {
      const c = tf.matMul(a, b, s.form === 'tn', s.form === 'nt');
      const next = tf.add(acc, c);
      acc.dispose();
      c.dispose();
      acc = next;
    }
    await tf.slice(acc, [0, 0], [1, 1]).data();
    acc.dispose();
  });
  a.dispose();
  b.dispose();
  return sec;
}

const gflops = (s: Shape, sec: number): number => (2 * s.M * s.K * s.N) / sec / 1e9;
const tfAdapter = await loadTf();
console.log(`adapter: ${backend.adapter}`);

let tuning = backend.tuning;
if (flag('--sweep')) {
  const big = shapes[shapes.length - 3]!;
  const sweepShape = flag('--sweep-dbn') ? shapes[6]! : big;
  const candidates: MatmulTile[] = gpu.adapter.cpuEmulated ? [
    tuning.large,
    { shared: false, wgX: 64, wgY: 1, bk: 16, tm: 4, tn: 4 },
    { shared: false, wgX: 64, wgY: 1, bk: 16, tm: 8, tn: 4 },
    { shared: false, wgX: 32, wgY: 1, bk: 16, tm: 16, tn: 4 },
    { shared: false, wgX: 16, wgY: 1, bk: 16, tm: 8, tn: 8 },
    { shared: true, wgX: 16, wgY: 16, bk: 16, tm: 4, tn: 4 },
    { shared: true, wgX: 8, wgY: 8, bk: 32, tm: 4, tn: 4 },
  ] : [
    tuning.large,
    { shared: true, wgX: 16, wgY: 16, bk: 8, tm: 8, tn: 8 },
    { shared: true, wgX: 16, wgY: 16, bk: 32, tm: 8, tn: 8 },
    { shared: true, wgX: 16, wgY: 8, bk: 16, tm: 8, tn: 8 },
    { shared: true, wgX: 8, wgY: 16, bk: 16, tm: 8, tn: 8 },
    { shared: true, wgX: 16, wgY: 16, bk: 16, tm: 8, tn: 4 },
    { shared: true, wgX: 32, wgY: 8, bk: 16, tm: 8, tn: 4 },
    { shared: true, wgX: 16, wgY: 16, bk: 16, tm: 4, tn: 4 },
    { shared: false, wgX: 16, wgY: 16, bk: 16, tm: 4, tn: 4 },
  ];
  let best = { tile: tuning.large, g: 0 };
  for (const tile of candidates) {
    const g = gflops(big, await oursTime(big, { large: tile, small: tile, minTiles: 0 }));
    console.log(`sweep ${big.name} ${big.form} ${JSON.stringify(tile)}: ${g.toFixed(1)} GFLOP/s`);
    if (g > best.g) best = { tile, g };
  }
  tuning = { ...tuning, large: best.tile };
  console.log(`using large tile ${JSON.stringify(best.tile)}`);
}

if (flag('--presets')) {
  await comparePresets();
  backend.dispose();
  Deno.exit(0);
}

/** Every shape with the old and new presets and each candidate tile; the best per shape and per class. */
async function comparePresets(): Promise<void> {
  const v = (wgX: number, wgY: number, tm: number, tn: number, bk: number, pad = 0): MatmulTile => ({ shared: true, vec4: true, wgX, wgY, bk, tm, tn, ...(pad ? { pad } : {}) });
  const cands: Record<string, MatmulTile> = {
    's128x128k16': GPU_TUNING_SCALAR.large,
    's64x64k16': GPU_TUNING_SCALAR.small,
    's128x128k8': { ...GPU_TUNING_SCALAR.large, bk: 8 },
    'v128x128k8': v(16, 16, 8, 8, 8),
    'v128x128k16': v(16, 16, 8, 8, 16),
    'v128x64k8': v(8, 16, 8, 8, 8),
    'v128x64k16': v(16, 16, 8, 4, 16),
    'v64x64k16': v(16, 16, 4, 4, 16),
    'v64x64k8x8': v(8, 8, 8, 8, 8),
    'v32x64k16': v(16, 8, 4, 4, 16),
    'v32x32k16': v(8, 8, 4, 4, 16),
    'v32x32k32': v(8, 8, 4, 4, 32),
    'v16x64k16': v(16, 4, 4, 4, 16),
  };
  const key = (t: MatmulTile): string => JSON.stringify(t);
  const nameOf = new Map(Object.entries(cands).map(([n, t]) => [key(t), n]));
  const klass = (s: Shape): string => (s.M === s.K && s.K === s.N ? `${s.M}^3` : 'batch 100');
  const score = new Map<string, Map<string, number[]>>(); // class -> tile -> GFLOP/s per shape
  const rows: string[][] = [['shape', 'form', 'tfjs', 'old preset', 'new preset', 'best tile', 'best', 'new/tfjs', 'best/tfjs', 'new/old']];
  for (const s of shapes) {
    const g = new Map<string, number>();
    const time = async (t: MatmulTile): Promise<number> => {
      const k = key(t);
      if (!g.has(k)) g.set(k, gflops(s, await oursTime(s, { large: t, small: t, minTiles: 0 })));
      return g.get(k)!;
    };
    for (const [n, t] of Object.entries(cands)) {
      const r = await time(t);
      console.log(`preset ${s.name} ${s.form} ${n} (${matmulKernel(s.form, t, s.M, s.K, s.N)}): ${r.toFixed(1)} GFLOP/s`);
    }
    const oldT = matmulTile(GPU_TUNING_SCALAR, s.M, s.N);
    const newT = matmulTile(GPU_TUNING, s.M, s.N);
    const oldG = await time(oldT);
    const newG = await time(newT);
    const theirs = tfAdapter ? gflops(s, await tfTime(tfAdapter, s)) : NaN;
    let best = ['', 0] as [string, number];
    for (const [k, r] of g) if (r > best[1]) best = [nameOf.get(k) ?? k, r];
    const c = klass(s);
    if (!score.has(c)) score.set(c, new Map());
    for (const [n, t] of Object.entries(cands)) {
      const m = score.get(c)!;
      if (!m.has(n)) m.set(n, []);
      m.get(n)!.push(g.get(key(t))!);
    }
    rows.push([s.name, s.form, theirs.toFixed(0), `${oldG.toFixed(0)} ${nameOf.get(key(oldT)) ?? ''}`, `${newG.toFixed(0)} ${nameOf.get(key(newT)) ?? ''}`, best[0], best[1].toFixed(0), (newG / theirs).toFixed(2), (best[1] / theirs).toFixed(2), (newG / oldG).toFixed(2)]);
    console.log(rows[rows.length - 1]!.join('\t'));
  }
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  console.log('\n' + rows.map((r) => r.map((c, i) => c.padEnd(w[i]!)).join('  ')).join('\n'));
  console.log('\nbest tile per class (geometric mean GFLOP/s over the class\'s shapes and forms):');
  for (const [c, m] of score) {
    const gm = [...m].map(([n, xs]) => [n, Math.exp(xs.reduce((a, x) => a + Math.log(x), 0) / xs.length)] as const).sort((a, b) => b[1] - a[1]);
    console.log(`  ${c}: ${gm.slice(0, 4).map(([n, x]) => `${n} ${x.toFixed(0)}`).join(', ')}  (${JSON.stringify(cands[gm[0]![0]])})`);
  }
}

const rows: string[][] = [['shape', 'form', 'tessera GFLOP/s', 'tfjs GFLOP/s', 'ratio']];
for (const s of shapes) {
  const ours = gflops(s, await oursTime(s, tuning));
  const theirs = tfAdapter ? gflops(s, await tfTime(tfAdapter, s)) : NaN;
  rows.push([s.name, s.form, ours.toFixed(1), theirs.toFixed(1), (ours / theirs).toFixed(2)]);
  console.log(rows[rows.length - 1]!.join('\t'));
}
const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
console.log('\n' + rows.map((r) => r.map((c, i) => c.padEnd(w[i]!)).join('  ')).join('\n'));
backend.dispose();
