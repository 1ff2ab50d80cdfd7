/**
 * The threaded CPU engine against one thread: examples/s of a fine-tuning
 * task (backprop: forward, backward, gradient sums) and of a CD-1 task (the
 * 500x2000 RBM above the frozen 784-500-500 layers) of the seed network
 * 784-500-500-2000-10 at batch 100: what a worker computes per task.
 * One backend per thread count in the same process; rounds alternate
 * between them (1, 2, 1, 2, ...) so load from elsewhere hits both alike, and
 * the figure is the median over rounds of the per-round ratio.
 *
 *   nice npx tsx bench/cpu-threads.ts [--quick] [--threads 2] [--rounds 7] [--round-ms 2000]
 */
import type { ComputeBackend, DenseLayer } from '../core/backend.ts';
import { createCpuBackend } from '../core/cpu/index.ts';
import { nodeSpawner } from '../core/cpu/threads-node.ts';

const argv = process.argv.slice(2);
const flag = (name: string, dflt: number): number => {
  const i = argv.indexOf(`--${name}`);
  if (i < 0) return dflt;
  const v = Number(argv[i + 1]);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} needs a positive number, got ${argv[i + 1]}`);
  return v;
};
const quick = argv.includes('--quick');
const threads = flag('threads', 2);
const rounds = flag('rounds', quick ? 5 : 9);
const roundMs = flag('round-ms', quick ? 800 : 2000);

const SIZES = [784, 500, 500, 2000, 10];
const B = 100;

let seed = 12345;
const rand = (): number => {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return seed / 4294967296;
};
const layers: DenseLayer[] = [];
for (let l = 0; l + 1 < SIZES.length; l++) {
  const [nIn, nOut] = [SIZES[l]!, SIZES[l + 1]!];
  layers.push({ nIn, nOut, W: Float32Array.from({ length: nIn * nOut }, () => (rand() * 2 - 1) * 0.05), b: new Float32Array(nOut) });
}
const x = Float32Array.from({ length: B * SIZES[0]! }, () => Math.floor(rand() * 256) / 255);
const labels = Uint8Array.from({ length: B }, () => Math.floor(rand() * 10));
const exampleIds = Uint32Array.from({ length: B }, (_, i) => i * 7);
const rbm = { V: 500, H: 2000, W: layers[2]!.W, b: new Float32Array(500), c: layers[2]!.b };

type Step = (b: ComputeBackend) => Promise<unknown>;
const STEPS: [string, Step][] = [
  ['fine-tuning step (backprop)', (b) => b.backprop({ layers, x, labels, batch: B })],
  ['CD-1 step (RBM 500x2000 above 784-500-500)', (b) => b.cd1({ lower: layers.slice(0, 2), rbm, x, batch: B, exampleIds, rng: { seed: 1, iteration: 1 } })],
];

async function examplesPerSecond(b: ComputeBackend, step: Step): Promise<number> {
  let n = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < roundMs) {
    await step(b);
    n++;
    t = performance.now();
  }
  return (n * B * 1000) / (t - t0);
}

const median = (a: number[]): number => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)]!;

const one = await createCpuBackend({ threads: 1 });
const many = await createCpuBackend({ threads, spawn: nodeSpawner });
console.log(`engines: "${one.adapter}" vs "${many.adapter}"; ${rounds} alternating rounds of ${roundMs} ms each`);
for (const [name, step] of STEPS) {
  for (let i = 0; i < 3; i++) {
    await step(one);
    await step(many);
  }
  const r1: number[] = [];
  const rN: number[] = [];
  const ratios: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const a = await examplesPerSecond(one, step);
    const b = await examplesPerSecond(many, step);
    r1.push(a);
    rN.push(b);
    ratios.push(b / a);
  }
  console.log(
    `${name}: 1 thread ${median(r1).toFixed(0)} examples/s, ${threads} threads ${median(rN).toFixed(0)} examples/s; ` +
      `median ratio ${median(ratios).toFixed(2)}x (rounds: ${ratios.map((q) => q.toFixed(2)).join(' ')})`,
  );
}
many.dispose();
one.dispose();
