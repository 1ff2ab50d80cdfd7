/**
 * Training modes at equal examples, in process: test error and the bytes a
 * grid would move per trained example (results up, weights down, one worker
 * per task; Trainer.traffic), for today's sync fp32 mode and the local-SGD
 * and compressed modes (core/model/training.ts).
 *
 *   nice npx tsx bench/modes.ts [--quick] [--train N] [--layers 784,500,500,2000,10] [--partitions P] [--finetune-epochs E] [--H 50]
 *       [--local-epochs-scale S]   (local-SGD variants train S times the epochs, with the learning-rate decay and momentum
 *                                   ramp stretched to match: S = P gives them sync's sequential steps and schedule)
 *       [--only 0,4]               (variants by index)
 */
import { parseArgs } from 'node:util';
import { createCpuBackend } from '../core/cpu/index.ts';
import { DEFAULT_JOB, parseJobConfig } from '../core/model/config.ts';
import { subset } from '../core/dataset.ts';
import { loadMnist } from '../datasets/mnist.ts';
import { evaluate, Trainer } from '../coordinator/trainer.ts';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean' },
    train: { type: 'string' },
    test: { type: 'string' },
    layers: { type: 'string' },
    partitions: { type: 'string' },
    'pretrain-epochs': { type: 'string' },
    'finetune-epochs': { type: 'string' },
    H: { type: 'string' },
    only: { type: 'string' },
    'local-epochs-scale': { type: 'string' },
  },
});
const quick = values.quick ?? false;
const trainN = Number(values.train ?? (quick ? 6000 : 60000));
const testN = Number(values.test ?? (quick ? 2000 : 10000));
const layers = (values.layers ?? (quick ? '784,200,10' : '784,500,500,2000,10')).split(',').map(Number);
const P = Number(values.partitions ?? 8);
const H = Number(values.H ?? 50);
const cfgBase = {
  ...DEFAULT_JOB,
  name: 'modes-bench',
  layers,
  partitions: P,
  pretrain: { ...DEFAULT_JOB.pretrain, epochs: Number(values['pretrain-epochs'] ?? 1) },
  finetune: { ...DEFAULT_JOB.finetune, epochs: Number(values['finetune-epochs'] ?? (quick ? 5 : 10)) },
};
const variants: [string, object | undefined][] = [
  ['sync fp32 (today)', undefined],
  ['sync, int8 up, int8 deltas down', { mode: 'sync', up: 'int8', down: 'int8' }],
  [`local-sgd H=${H}, f32`, { mode: 'local-sgd', localSteps: H, up: 'f32', down: 'f32' }],
  [`local-sgd H=${H}, f16`, { mode: 'local-sgd', localSteps: H, up: 'f16', down: 'f16' }],
  [`local-sgd H=${H}, int8`, { mode: 'local-sgd', localSteps: H, up: 'int8', down: 'int8' }],
  [`local-sgd H=${H}, int8, outer nesterov 1/0.5`, { mode: 'local-sgd', localSteps: H, up: 'int8', down: 'int8', outer: { kind: 'nesterov', learningRate: 1, momentum: 0.5 } }],
];
const only = values.only?.split(',').map(Number);

const mnist = await loadMnist();
const train = subset(mnist.train, Math.min(trainN, mnist.train.count));
const test = subset(mnist.test, Math.min(testN, mnist.test.count));
const backend = await createCpuBackend();
console.log(`layers ${layers.join('-')}, ${train.count} training / ${test.count} test examples, ${P} partitions, batch ${cfgBase.finetune.batchSize}, pretrain ${cfgBase.pretrain.epochs} / finetune ${cfgBase.finetune.epochs} epochs`);
console.log('| mode | steps | test error | examples | MB up | MB down | bytes / example | vs sync fp32 | wall s |');
console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
let baseline = 0;
for (const [i, [name, training]] of variants.entries()) {
  if (only && !only.includes(i)) continue;
  const scale = training && (training as { mode: string }).mode === 'local-sgd' ? Number(values['local-epochs-scale'] ?? 1) : 1;
  const ft = cfgBase.finetune;
  const finetune = { ...ft, epochs: ft.epochs * scale, learningRate: { ...ft.learningRate, decay: ft.learningRate.decay ** (1 / scale) }, momentum: { ...ft.momentum, rampEpochs: ft.momentum.rampEpochs * scale } };
  const cfg = parseJobConfig({ ...cfgBase, finetune, ...(training ? { training } : {}) });
  const tr = new Trainer({ backend, config: cfg, train });
  const t0 = performance.now();
  while (!tr.done) await tr.step();
  const wall = (performance.now() - t0) / 1000;
  const ev = await evaluate(backend, cfg, tr.params, test);
  const { up, down, examples } = tr.traffic;
  const perEx = (up + down) / examples;
  if (i === 0) baseline = perEx;
  console.log(`| ${name}${scale !== 1 ? `, ${scale}x finetune epochs` : ''} | ${tr.total} | ${(ev.error * 100).toFixed(2)}% | ${examples} | ${(up / 1e6).toFixed(1)} | ${(down / 1e6).toFixed(1)} | ${perEx.toFixed(0)} | ${baseline ? `${(baseline / perEx).toFixed(0)}x fewer` : ''} | ${wall.toFixed(0)} |`);
}
backend.dispose();
