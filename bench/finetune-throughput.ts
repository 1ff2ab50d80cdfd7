/**
 * Fine-tuning throughput: examples/s of one full training step (forward,
 * backward, plain SGD update; batch 100; 784-500-500-2000-10 MLP with
 * sigmoid hidden units and softmax cross-entropy) on the CPU backend, against
 * TF.js with the wasm backend training the same MLP in the same run
 * (the same forward, backward and SGD step in TF.js ops; see tfRate). Inputs
 * are random pixels and labels: the cost does not depend on the values.
 *
 *   nice npx tsx bench/finetune-throughput.ts [--quick]
 */
import type { DenseLayer } from '../core/backend.ts';
import { createCpuBackend } from '../core/cpu/index.ts';
import { rateAsync, tf, useTfBackend } from './cpu-tfjs.ts';

const quick = process.argv.includes('--quick');
const SIZES = [784, 500, 500, 2000, 10];
const B = 100;
const LR = 0.01;
const roundMs = quick ? 1000 : 3000;

const x = new Float32Array(B * SIZES[0]!);
for (let i = 0; i < x.length; i++) x[i] = Math.floor(Math.random() * 256) / 255;
const labels = new Uint8Array(B);
for (let i = 0; i < B; i++) labels[i] = Math.floor(Math.random() * 10);

function initLayers(): DenseLayer[] {
  const layers: DenseLayer[] = [];
  for (let l = 0; l + 1 < SIZES.length; l++) {
    const nIn = SIZES[l]!;
    const nOut = SIZES[l + 1]!;
    const W = new Float32Array(nIn * nOut);
    for (let i = 0; i < W.length; i++) W[i] = (Math.random() * 2 - 1) * 0.05;
    layers.push({ nIn, nOut, W, b: new Float32Array(nOut) });
  }
  return layers;
}

async function cpuRate(engine: 'auto' | 'js'): Promise<{ adapter: string; perSecond: number; loss: number }> {
  const backend = await createCpuBackend({ engine });
  const layers = initLayers();
  let loss = 0;
  const step = async () => {
    const g = await backend.backprop({ layers, x, labels, batch: B });
    loss = g.loss / B;
    for (let l = 0; l < layers.length; l++) {
      const { W, b } = layers[l]!;
      const dW = g.dW[l]!;
      const db = g.db[l]!;
      const s = LR / B;
      for (let i = 0; i < W.length; i++) W[i] = W[i]! - s * dW[i]!;
      for (let i = 0; i < b.length; i++) b[i] = b[i]! - s * db[i]!;
    }
  };
  const perSecond = await rateAsync(step, engine === 'js' ? roundMs / 3 : roundMs, engine === 'js' ? 1 : 5);
  backend.dispose();
  return { adapter: backend.adapter, perSecond, loss };
}

/**
 * TF.js-wasm training the same MLP. tfjs-core's Node bundle registers no
 * kernel gradients (and @tensorflow/tfjs, which would, is not installed), so
 * tf.grad cannot run here; the backward pass is written with the ops TF.js's
 * autodiff emits for it (MatMul's gradient is matMul with transposeA /
 * transposeB, Sigmoid's is dy * y * (1 - y), softmax cross-entropy's is p - y).
 */
async function tfRate(): Promise<{ adapter: string; perSecond: number; loss: number }> {
  const adapter = await useTfBackend('wasm');
  const vars = initLayers().map((l) => ({ W: tf.variable(tf.tensor2d(l.W, [l.nIn, l.nOut])), b: tf.variable(tf.tensor1d(l.b)) }));
  const xs = tf.tensor2d(x, [B, SIZES[0]!]);
  const ys = tf.oneHot(tf.tensor1d(labels, 'int32'), 10);
  const lr = tf.scalar(LR / B);
  let loss = 0;
  const step = async () => {
    const cost = tf.tidy(() => {
      const acts: tf.Tensor2D[] = [xs];
      for (let l = 0; l < vars.length; l++) {
        const z = tf.add(tf.matMul(acts[l]!, vars[l]!.W), vars[l]!.b) as tf.Tensor2D;
        acts.push(l < vars.length - 1 ? tf.sigmoid(z) : z);
      }
      const logits = acts[vars.length]!;
      const lossSum = tf.sum(tf.mul(ys, tf.neg(tf.logSoftmax(logits))));
      let D = tf.sub(tf.softmax(logits), ys) as tf.Tensor2D;
      for (let l = vars.length - 1; l >= 0; l--) {
        const dW = tf.matMul(acts[l]!, D, true, false);
        const db = tf.sum(D, 0);
        if (l > 0) {
          const a = acts[l]!;
          D = tf.mul(tf.matMul(D, vars[l]!.W, false, true), tf.mul(a, tf.sub(1, a))) as tf.Tensor2D;
        }
        vars[l]!.W.assign(tf.sub(vars[l]!.W, tf.mul(lr, dW)));
        vars[l]!.b.assign(tf.sub(vars[l]!.b, tf.mul(lr, db)));
      }
      return lossSum;
    });
    loss = cost.dataSync()[0]! / B;
    cost.dispose();
  };
  const perSecond = await rateAsync(step, roundMs);
  return { adapter, perSecond, loss };
}

const ours = await cpuRate('auto');
const theirs = await tfRate();
const oursJs = await cpuRate('js');
const line = (name: string, r: { adapter: string; perSecond: number; loss: number }) =>
  console.log(`${name.padEnd(12)} ${(r.perSecond * B).toFixed(0).padStart(6)} examples/s  (${(1000 / r.perSecond).toFixed(1)} ms/step, loss ${r.loss.toFixed(3)})  ${r.adapter}`);
console.log(`fine-tuning step, ${SIZES.join('-')}, batch ${B}, forward + backward + SGD update`);
line('cpu backend', ours);
line('cpu (ts)', oursJs);
line('tfjs-wasm', theirs);
console.log(`ratio cpu backend / tfjs-wasm: ${(ours.perSecond / theirs.perSecond).toFixed(2)}x`);
console.log(`ratio cpu (ts) / tfjs-wasm:    ${(oursJs.perSecond / theirs.perSecond).toFixed(2)}x`);
