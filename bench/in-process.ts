/**
 * The in-process trainer on one job, timed: a baseline of
 * distributed-overhead.ts. Runs in Node (imported) and in Deno (as a script,
 * so the baseline can share the Deno worker's runtime):
 *
 *   deno run -A bench/in-process.ts JOB.json MNIST_DIR   -> one JSON line
 */
import { createCpuBackend } from '../core/cpu/index.ts';
import { parseJobConfig, type JobConfig } from '../core/model/config.ts';
import { subset } from '../core/dataset.ts';
import { loadMnist } from '../datasets/mnist.ts';
import { Trainer } from '../coordinator/trainer.ts';

export interface InProcessRun {
  readonly runtime: string;
  readonly iterations: number;
  readonly examples: number;
  readonly seconds: number;
  /** after iteration 0 (start-up effects excluded) */
  readonly steadyExamples: number;
  readonly steadySeconds: number;
}

export async function runInProcess(cfg: JobConfig, mnistDir: string): Promise<InProcessRun> {
  const m = await loadMnist({ source: 'dir', dir: mnistDir });
  const train = cfg.trainLimit ? subset(m.train, cfg.trainLimit) : m.train;
  const trainer = new Trainer({ backend: await createCpuBackend(), config: cfg, train });
  const t0 = performance.now();
  let examples = 0;
  let steadyExamples = 0;
  let steadySeconds = 0;
  while (!trainer.done) {
    const r = await trainer.step();
    examples += r.count;
    if (r.plan.iteration > 0) {
      steadyExamples += r.count;
      steadySeconds += r.seconds;
    }
  }
  const runtime = 'Deno' in globalThis ? `Deno ${(globalThis as unknown as { Deno: { version: { deno: string } } }).Deno.version.deno}` : `Node ${process.versions.node}`;
  return { runtime, iterations: trainer.plan.totalIterations, examples, seconds: (performance.now() - t0) / 1000, steadyExamples, steadySeconds };
}

if ((import.meta as ImportMeta & { main?: boolean }).main) {
  const [jobPath, mnistDir] = (globalThis as unknown as { Deno: { args: string[] } }).Deno.args;
  if (!jobPath || !mnistDir) throw new Error('usage: deno run -A bench/in-process.ts JOB.json MNIST_DIR');
  const { readFileSync } = await import('node:fs');
  console.log(JSON.stringify(await runInProcess(parseJobConfig(JSON.parse(readFileSync(jobPath, 'utf8'))), mnistDir)));
}
