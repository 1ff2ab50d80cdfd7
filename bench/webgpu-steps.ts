/**
 * Examples per second of whole tasks of the 784-500-500-2000-10 DBN: a CD-1
 * step of each RBM (with the frozen layers below it) and a fine-tuning
 * (backprop) step, on the webgpu backend and on the cpu backend, same run.
 *
 *   nice node_modules/.bin/deno run -A bench/webgpu-steps.ts [--batch 100] [--ms 1500]
 *
 * webgpu is timed twice: with a fixed weightsVersion (weights resident on the
 * device, as across the tasks of one iteration) and without one (weights sent
 * with every task). Each figure: the median of 5 rounds of repeated tasks.
 */
import type { ComputeBackend, DenseLayer, RbmLayer } from '../core/backend.ts';
import { createCpuBackend } from '../core/cpu/index.ts';
import { createWebGpuBackend } from '../core/webgpu/index.ts';

const Deno = (globalThis as unknown as { Deno: { args: string[] } }).Deno;
const args = Deno.args;
const opt = (f: string, d: number): number => (args.includes(f) ? Number(args[args.indexOf(f) + 1]) : d);
const B = opt('--batch', 100);
const targetMs = opt('--ms', 1500);
const sizes = [784, 500, 500, 2000, 10];

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
const x = rand(B * 784, 0, 1);
const labels = Uint8Array.from({ length: B }, (_, i) => i % 10);
const exampleIds = Uint32Array.from({ length: B }, (_, i) => 1000 + i);

type Step = (b: ComputeBackend, version?: string) => Promise<unknown>;
const steps: [string, Step][] = [0, 1, 2].map((k) => {
  const rbm: RbmLayer = { V: sizes[k]!, H: sizes[k + 1]!, W: layers[k]!.W, b: vbias[k]!, c: layers[k]!.b };
  const step: Step = (b, weightsVersion) => b.cd1({ lower: layers.slice(0, k), rbm, x, batch: B, exampleIds, rng: { seed: 1, iteration: 2 }, weightsVersion } as Parameters<ComputeBackend['cd1']>[0]);
  return [`CD-1 rbm${k} ${sizes[k]}x${sizes[k + 1]}`, step] as [string, Step];
});
steps.push(['fine-tune 784-500-500-2000-10', (b, weightsVersion) => b.backprop({ layers, x, labels, batch: B, weightsVersion } as Parameters<ComputeBackend['backprop']>[0])]);

async function examplesPerSecond(b: ComputeBackend, step: Step, version?: string): Promise<number> {
  await step(b, version);
  let t = performance.now();
  await step(b, version);
  const R = Math.max(1, Math.round(targetMs / 5 / Math.max(1, performance.now() - t)));
  const rates: number[] = [];
  for (let round = 0; round < 5; round++) {
    t = performance.now();
    for (let i = 0; i < R; i++) await step(b, version);
    rates.push((B * R) / ((performance.now() - t) / 1000));
  }
  return rates.sort((a, c) => a - c)[2]!;
}

const gpu = await createWebGpuBackend();
const cpu = await createCpuBackend();
console.log(`batch ${B}; webgpu: ${gpu.adapter}; cpu: ${cpu.adapter}`);
const rows = [['task', 'webgpu resident ex/s', 'webgpu re-sent ex/s', 'cpu ex/s', 'webgpu/cpu']];
for (const [name, step] of steps) {
  const resident = await examplesPerSecond(gpu, step, 'bench');
  const resent = await examplesPerSecond(gpu, step);
  const c = await examplesPerSecond(cpu, step);
  rows.push([name, resident.toFixed(0), resent.toFixed(0), c.toFixed(0), (resident / c).toFixed(2)]);
  console.log(rows[rows.length - 1]!.join('\t'));
}
const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
console.log('\n' + rows.map((r) => r.map((c, i) => c.padEnd(w[i]!)).join('  ')).join('\n'));
gpu.dispose();
cpu.dispose();
