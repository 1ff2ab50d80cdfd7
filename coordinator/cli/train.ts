/**
 * In-process training on one machine: pre-trains the DBN layer by layer,
 * fine-tunes it, reports test error, writes a checkpoint.
 *
 *   npm run train -- [--config job.json] [--data DIR] [--out FILE] [--resume FILE]
 *                    [--train-limit N] [--test-limit N] [--pretrain-epochs E] [--finetune-epochs E]
 *                    [--layers 784,500,10] [--seed S] [--checkpoint-every N]
 */
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { createCpuBackend } from '../../core/cpu/index.ts';
import { DEFAULT_JOB, parseJobConfig, type JobConfig } from '../../core/model/config.ts';
import { phaseName } from '../../core/model/plan.ts';
import { describeTraining } from '../../core/model/training.ts';
import { subset } from '../../core/dataset.ts';
import { loadMnist } from '../../datasets/mnist.ts';
import { loadCheckpoint, saveCheckpoint } from '../engine/checkpoint.ts';
import { evaluate, Trainer } from '../trainer.ts';
import { formatSeconds, ProgressBar } from './progress.ts';
import { readJobFile, runCli } from './run-cli.ts';
import { parseTrainFlags, TRAIN_USAGE, withOverrides } from './train-flags.ts';

async function main(): Promise<number> {
  const flags = parseTrainFlags(process.argv.slice(2));
  if (flags.help) {
    process.stdout.write(TRAIN_USAGE);
    return 0;
  }
  const file = flags.config === undefined ? {} : readJobFile(flags.config, '--config');
  const config: JobConfig = parseJobConfig(withOverrides(file, flags.overrides), DEFAULT_JOB);
  const values = { data: flags.data, out: flags.out, resume: flags.resume, 'eval-each-epoch': flags.evalEachEpoch };

  const data = await loadMnist({ dir: values.data });
  const train = config.trainLimit ? subset(data.train, config.trainLimit) : data.train;
  const test = config.testLimit ? subset(data.test, config.testLimit) : data.test;
  const backend = await createCpuBackend();
  const out = resolve(values.out);
  mkdirSync(dirname(out), { recursive: true });
  const resume = values.resume ? loadCheckpoint(values.resume, config) : undefined;
  const trainer = new Trainer({ backend, config, train, resume });
  const plan = trainer.plan;

  console.log(`Tessera in-process training: ${config.name}, layers ${config.layers.join('-')}`);
  console.log(`data: ${data.source}; ${train.count} training, ${test.count} test examples; ${config.partitions} partitions`);
  console.log(`backend: ${backend.kind} (${backend.adapter}); ${plan.totalIterations} iterations in ${plan.phases.length} phases`);
  if (trainer.local) console.log(`training: ${describeTraining(config)}: ${trainer.total} rounds`);
  else if (config.training) console.log(`training: ${describeTraining(config)}`);
  for (const p of plan.phases) {
    console.log(`  ${phaseName(p.phase).padEnd(18)} ${p.iterations} iterations, batch ~${p.config.batchSize}, ${p.config.epochs} epochs`);
  }
  if (resume) console.log(`resuming at iteration ${resume.iteration} from ${values.resume}`);

  const bar = new ProgressBar(trainer.total);
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
    // local SGD: a line per round (a round spans many plan iterations)
    const epochEnd = m.round !== undefined || (it.step + 1) % plan.phases[it.phaseIndex]!.iterationsPerEpoch === 0;
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

runCli(async () => process.exit(await main()));
