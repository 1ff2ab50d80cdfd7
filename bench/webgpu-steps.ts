/**
 * Examples per second of whole tasks of the 784-500-500-2000-10 DBN: a CD-1
 * step of each RBM (with the frozen layers below it) and a fine-tuning
 * (backprop) step, alone and as a bundle of tasks of one weights version (the
 * worker's --tasks-per-lease), on the webgpu backend and on the cpu backend
 * (one thread), same run; and what each step costs the GPU's driver:
 * dispatches, submits, readbacks (mapAsync), buffers and bind groups created.
 *
 *   nice node_modules/.bin/deno run -A bench/webgpu-steps.ts [--batch 100] [--ms 1500] [--bundle 8] [--no-cpu] [--no-resent] [--only REGEX]
 *
 * The counts come from wrapping the WebGPU prototypes (GPUComputePassEncoder
 * .dispatchWorkgroups, GPUQueue.submit, GPUBuffer.mapAsync, GPUDevice
 * .createBuffer / .createBindGroup), so the same file counts any version of
 * the backend (it ran unchanged on the code before the whole-step work for
 * bench/README.md's before/after table). A bundle uses the backend's
 * batched entry points (cd1Bundle, backpropBundle) where it has them, else one
 * call per task summed on the CPU, as the worker loop does.
 *
 * webgpu is timed with a fixed weightsVersion (weights resident on the
 * device, as across the tasks of one iteration) and, unless --no-resent,
 * without one (weights sent with every task). Each figure: the median of 5
 * rounds of repeated tasks.
 */
import type { BackpropRequest, BackpropSums, Cd1Request, Cd1Sums, ComputeBackend, DenseLayer, RbmLayer } from '../core/backend.ts';
import { createCpuBackend } from '../core/cpu/index.ts';
import { createWebGpuBackend } from '../core/webgpu/index.ts';

const Deno = (globalThis as unknown as { Deno: { args: string[] } }).Deno;
const args = Deno.args;
const opt = (f: string, d: number): number => (args.includes(f) ? Number(args[args.indexOf(f) + 1]) : d);
const B = opt('--batch', 100);
const targetMs = opt('--ms', 1500);
const bundleSize = opt('--bundle', 8);
const withCpu = !args.includes('--no-cpu');
const withResent = !args.includes('--no-resent');
/** only the steps whose name matches (e.g. "fine-tune") */
const only = new RegExp(args.includes('--only') ? args[args.indexOf('--only') + 1]! : '');
const sizes = [784, 500, 500, 2000, 10];

// Driver-call counters, by wrapping the prototypes (counted for every backend version alike).
const count = { dispatches: 0, submits: 0, maps: 0, buffers: 0, bindGroups: 0 };
type AnyFn = (this: unknown, ...a: unknown[]) => unknown;
function wrap(proto: object | undefined, name: string, key: keyof typeof count): void {
  const p = proto as Record<string, AnyFn> | undefined;
  const f = p?.[name];
  if (!p || typeof f !== 'function') return void console.log(`(cannot count ${name}: not found)`);
  p[name] = function (this: unknown, ...a: unknown[]) {
    count[key]++;
    return f.apply(this, a);
  };
}
const g = globalThis as unknown as Record<string, { prototype: object } | undefined>;
wrap(g.GPUComputePassEncoder?.prototype, 'dispatchWorkgroups', 'dispatches');
wrap(g.GPUQueue?.prototype, 'submit', 'submits');
wrap(g.GPUBuffer?.prototype, 'mapAsync', 'maps');
wrap(g.GPUDevice?.prototype, 'createBuffer', 'buffers');
wrap(g.GPUDevice?.prototype, 'createBindGroup', 'bindGroups');

let state = 12345;
function rand(n: number, lo: number, hi: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    state ^= state << 13; state >>>= 0; state ^= state >>> 17; state ^= state << 5; state >>>= 0;
    a[i] = lo + (hi - lo) * (state / 4294967296);
  }
  return a;
}

const layers: DenseLayer[] = sizes.slice(1).map((n, i) => ({ nIn: sizes[i]!, nOut: n, W: rand(sizes[i]! * n, -0.05, 0.05), b: rand(n, -0.1, 0.1) }));
const vbias = sizes.slice(0, -2).map((n) => rand(n, -0.1, 0.1));
// One batch per task of a bundle (different examples, as the tasks of one lease are).
const xs = Array.from({ length: Math.max(1, bundleSize) }, () => rand(B * 784, 0, 1));
const labels = Uint8Array.from({ length: B }, (_, i) => i % 10);
const idsOf = (t: number): Uint32Array => Uint32Array.from({ length: B }, (_, i) => 1000 + t * B + i);

/** Optional batched entry points (backend.ts); absent in older backends and on the cpu backend. */
interface Bundling {
  cd1Bundle?(reqs: readonly Cd1Request[]): Promise<Cd1Sums>;
  backpropBundle?(reqs: readonly BackpropRequest[]): Promise<BackpropSums>;
}

/** Runs `n` tasks of one version: one batched call where the backend has it, else one call per task (sums added on the CPU). */
async function many<R, S extends { dW: unknown }>(n: number, reqs: R[], one: (r: R) => Promise<S>, batched: ((r: R[]) => Promise<S>) | undefined, add: (a: S, b: S) => void): Promise<S> {
  if (n > 1 && batched) return batched(reqs);
  let sum: S | null = null;
  for (const r of reqs) {
    const s = await one(r);
    if (sum) add(sum, s);
    else sum = s;
  }
  return sum!;
}
const addInto = (a: Float32Array, b: Float32Array): void => {
  for (let i = 0; i < a.length; i++) a[i] += b[i]!;
};

type Step = (b: ComputeBackend, version?: number) => Promise<unknown>;
function cd1Step(k: number, tasks: number): Step {
  const rbm: RbmLayer = { V: sizes[k]!, H: sizes[k + 1]!, W: layers[k]!.W, b: vbias[k]!, c: layers[k]!.b };
  return (b, weightsVersion) => {
    const reqs: Cd1Request[] = Array.from({ length: tasks }, (_, t) => ({ lower: layers.slice(0, k), rbm, x: xs[t]!, batch: B, exampleIds: idsOf(t), rng: { seed: 1, iteration: 2 }, weightsVersion }));
    const bb = b as ComputeBackend & Bundling;
    return many(tasks, reqs, (r) => b.cd1(r), bb.cd1Bundle?.bind(bb), (s, o) => {
      addInto(s.dW, o.dW);
      addInto(s.db, o.db);
      addInto(s.dc, o.dc);
    });
  };
}
function backpropStep(tasks: number): Step {
  return (b, weightsVersion) => {
    const reqs: BackpropRequest[] = Array.from({ length: tasks }, (_, t) => ({ layers, x: xs[t]!, labels, batch: B, weightsVersion }));
    const bb = b as ComputeBackend & Bundling;
    return many(tasks, reqs, (r) => b.backprop(r), bb.backpropBundle?.bind(bb), (s, o) => {
      s.dW.forEach((d, i) => addInto(d, o.dW[i]!));
      s.db.forEach((d, i) => addInto(d, o.db[i]!));
    });
  };
}

/** [name, step, tasks per step] */
const steps: [string, Step, number][] = [0, 1, 2].map((k) => [`CD-1 rbm${k} ${sizes[k]}x${sizes[k + 1]}`, cd1Step(k, 1), 1] as [string, Step, number]);
steps.push(['fine-tune 784-500-500-2000-10', backpropStep(1), 1]);
if (bundleSize > 1) {
  steps.push([`CD-1 rbm2, bundle of ${bundleSize}`, cd1Step(2, bundleSize), bundleSize]);
  steps.push([`fine-tune, bundle of ${bundleSize}`, backpropStep(bundleSize), bundleSize]);
}

async function examplesPerSecond(b: ComputeBackend, step: Step, tasks: number, version?: number): Promise<number> {
  await step(b, version);
  let t = performance.now();
  await step(b, version);
  const R = Math.max(1, Math.round(targetMs / 5 / Math.max(1, performance.now() - t)));
  const rates: number[] = [];
  for (let round = 0; round < 5; round++) {
    t = performance.now();
    for (let i = 0; i < R; i++) await step(b, version);
    rates.push((tasks * B * R) / ((performance.now() - t) / 1000));
  }
  return rates.sort((a, c) => a - c)[2]!;
}

/** Driver calls of one step, after warm-up (pipelines built, weights resident). */
async function callsPerStep(b: ComputeBackend, step: Step): Promise<typeof count> {
  await step(b, 1);
  await step(b, 1);
  for (const k of Object.keys(count) as (keyof typeof count)[]) count[k] = 0;
  await step(b, 1);
  return { ...count };
}

const gpu = await createWebGpuBackend();
const cpu = withCpu ? await createCpuBackend() : null;
console.log(`batch ${B}; webgpu: ${gpu.adapter}; cpu: ${cpu?.adapter ?? 'not timed (--no-cpu)'}`);
const rows = [['task (batch ' + B + ')', 'dispatches', 'submits', 'readbacks', 'buffers', 'bind groups', 'webgpu resident ex/s', 'webgpu re-sent ex/s', 'cpu ex/s', 'webgpu/cpu']];
for (const [name, step, tasks] of steps.filter(([n]) => only.test(n))) {
  const c = await callsPerStep(gpu, step);
  const resident = await examplesPerSecond(gpu, step, tasks, 1);
  const resent = withResent ? await examplesPerSecond(gpu, step, tasks) : NaN;
  const cr = cpu ? await examplesPerSecond(cpu, step, tasks) : NaN;
  rows.push([name, `${c.dispatches}`, `${c.submits}`, `${c.maps}`, `${c.buffers}`, `${c.bindGroups}`, resident.toFixed(0), withResent ? resent.toFixed(0) : '-', cpu ? cr.toFixed(0) : '-', cpu ? (resident / cr).toFixed(2) : '-']);
  console.log(rows[rows.length - 1]!.join('\t'));
}
const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
console.log('\n' + rows.map((r) => r.map((c, i) => c.padEnd(w[i]!)).join('  ')).join('\n'));
gpu.dispose();
cpu?.dispose();
