/**
 * Honest differences between backends on whole tasks of the DBN's shapes
 * (784-500-500-2000-10), every phase: the CPU backend (WebAssembly SIMD)
 * against WebGPU (lavapipe here; a real GPU's driver elsewhere), and the
 * CPU backend against its plain-JS engine (the rounding floor). Real MNIST
 * examples when found, else synthetic ones. The figures set DEFAULT_TOLERANCE
 * (coordinator/trust/compare.ts). Chromium's SwiftShader: the check
 * 'whole tasks at the DBN's shapes agree with the CPU backend' in
 * test/webgpu/cases.ts prints the same rows in the Chromium suite.
 *
 *   XDG_RUNTIME_DIR=$(mktemp -d) node_modules/.bin/deno run -A bench/backend-agreement.ts [--tasks 4] [--batches 17,100]
 */
import { createCpuBackend, jsEngine } from '../core/cpu/index.ts';
import { CpuBackend } from '../core/cpu/cpu-backend.ts';
import { createWebGpuBackend } from '../core/webgpu/index.ts';
import type { ExampleBatch } from '../core/task.ts';
import { loadMnistDir } from '../datasets/mnist.ts';
import { DEFAULT_TOLERANCE } from '../coordinator/trust/compare.ts';
import { wholeTaskAgreement, type AgreementRow } from '../test/webgpu/whole-task.ts';

const Deno = (globalThis as unknown as { Deno: { args: string[]; env: { get(k: string): string | undefined } } }).Deno;
const args = Deno.args;
const opt = (name: string, dflt: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1]! : dflt;
};
const tasks = Number(opt('tasks', '4'));
const batches = opt('batches', '17,100').split(',').map(Number);

let mnist: { pixels: Uint8Array; labels: Uint8Array; n: number } | null = null;
for (const dir of [Deno.env.get('TESSERA_MNIST_DIR'), '../shared/datasets/mnist', '/work/shared/datasets/mnist']) {
  if (!dir) continue;
  try {
    const { train } = await loadMnistDir(dir);
    mnist = { pixels: train.images, labels: train.labels, n: train.count };
    console.log(`MNIST from ${dir}`);
    break;
  } catch {
    // next
  }
}
if (!mnist) console.log('MNIST not found: synthetic examples');

function realBatch(B: number, start: number): ExampleBatch | undefined {
  if (!mnist) return undefined;
  const ids = Uint32Array.from({ length: B }, (_, i) => (start + i * 37) % mnist!.n);
  const pixels = new Uint8Array(B * 784);
  ids.forEach((id, i) => pixels.set(mnist!.pixels.subarray(id * 784, (id + 1) * 784), i * 784));
  return { pixels, labels: Uint8Array.from(ids, (id) => mnist!.labels[id]!), ids, dim: 784 };
}

const simd = await createCpuBackend();
const js = new CpuBackend(jsEngine());
const gpu = await createWebGpuBackend();
console.log(`webgpu adapter: ${gpu.adapter}`);

type Pair = { name: string; rows: AgreementRow[] };
const pairs: Pair[] = [{ name: `cpu (simd) vs webgpu (${gpu.adapter})`, rows: [] }, { name: 'cpu (simd) vs cpu (js)', rows: [] }];
for (const batch of batches) {
  for (const weightScale of [0, 0.1]) {
    for (let t = 0; t < tasks; t++) {
      const o = { batch, weightScale, iteration: 3 + t, seed: 11 + t, examples: realBatch(batch, 1000 * t) };
      pairs[0]!.rows.push(...(await wholeTaskAgreement(simd, gpu, o)));
      pairs[1]!.rows.push(...(await wholeTaskAgreement(simd, js, o)));
    }
  }
}

console.log(`\ntolerance: pretrain ${DEFAULT_TOLERANCE.pretrainRelL2}, finetune ${DEFAULT_TOLERANCE.finetuneRelL2}, loss ${DEFAULT_TOLERANCE.lossRel} (relative)`);
for (const p of pairs) {
  console.log(`\n${p.name}: worst over ${tasks} tasks`);
  console.log('| phase | B | weights | worst tensor rel. L2 | which | loss rel. | correct diff | agree |');
  console.log('| --- | ---: | --- | ---: | --- | ---: | ---: | --- |');
  const keys = [...new Set(p.rows.map((r) => `${r.phase}|${r.batch}|${r.weightScale}`))];
  for (const k of keys) {
    const rs = p.rows.filter((r) => `${r.phase}|${r.batch}|${r.weightScale}` === k);
    const worst = rs.reduce((a, b) => (b.comparison.worstRelL2 > a.comparison.worstRelL2 ? b : a));
    const loss = Math.max(...rs.map((r) => r.comparison.lossRel));
    const corr = Math.max(...rs.map((r) => Math.abs(r.correct[0] - r.correct[1])));
    const [phase, B, ws] = k.split('|');
    console.log(`| ${phase} | ${B} | ${ws === '0' ? 'initial' : `+-${ws}`} | ${worst.comparison.worstRelL2.toExponential(2)} | ${worst.comparison.worstTensor} | ${loss.toExponential(2)} | ${corr} | ${rs.every((r) => r.comparison.agree) ? 'yes' : 'NO'} |`);
  }
}
gpu.dispose();
js.dispose();
simd.dispose();
