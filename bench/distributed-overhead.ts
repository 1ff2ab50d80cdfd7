/**
 * Overhead of the distributed path: the same job trained by the in-process
 * trainer and by the coordinator with one local Deno worker (CPU backend),
 * examples per second of each and their ratio (goal: >= 0.9).
 *
 *   nice npx tsx bench/distributed-overhead.ts [--partitions P] [--job job.json] [--trace]
 *
 * Default job: 784-500-500-2000-10 fine-tuning, 30 iterations of batch 100 on
 * 10,000 MNIST examples, one task per iteration (--partitions 1).
 *
 * Both sides use the CPU backend in one thread; the coordinator runs in this
 * process, the worker in its own Deno process.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createCpuBackend } from '../client/core/cpu/index.ts';
import { parseJobConfig, type JobConfig } from '../client/core/model/config.ts';
import { spawnDenoWorker } from '../coordinator/cli/main.ts';
import { mnistLoader, parseFlags, startServer } from '../coordinator/server.ts';
import { Trainer } from '../coordinator/trainer.ts';

const f = parseFlags(process.argv.slice(2));
const partitions = typeof f.partitions === 'string' ? Number(f.partitions) : 1;
const MNIST = resolve(import.meta.dirname, '../../shared/datasets/mnist');
const cfg: JobConfig = parseJobConfig(
  typeof f.job === 'string'
    ? JSON.parse(readFileSync(f.job, 'utf8'))
    : {
        name: 'overhead',
        layers: [784, 500, 500, 2000, 10],
        trainLimit: 10_000,
        testLimit: 100,
        partitions,
        seed: 5,
        pretrain: { epochs: 0 },
        finetune: { epochs: 0.3, batchSize: 100 },
        checkpointEvery: 1_000_000,
      },
);
const load = mnistLoader(MNIST);
const data = await load(cfg);

// In-process.
const trainer = new Trainer({ backend: await createCpuBackend(), config: cfg, train: data.train });
const t0 = performance.now();
let examples = 0;
let steadyExamples = 0;
let steadySeconds = 0;
while (!trainer.done) {
  const m = await trainer.step();
  examples += m.count;
  if (m.plan.iteration > 0) {
    steadyExamples += m.count;
    steadySeconds += m.seconds;
  }
}
const inSeconds = (performance.now() - t0) / 1000;
const inRate = examples / inSeconds;
const inSteady = steadyExamples / steadySeconds;
console.log(`in-process trainer: ${trainer.plan.totalIterations} iterations, ${examples} examples in ${inSeconds.toFixed(2)} s = ${inRate.toFixed(0)} examples/s; after iteration 0: ${inSteady.toFixed(0)} examples/s`);

// Distributed: coordinator here, one Deno worker process.
const dir = mkdtempSync(join(tmpdir(), 'tessera-bench-'));
const srv = await startServer({ port: 0, dataDir: dir, adminToken: 'bench-admin-token-0123456789', mnistDir: MNIST, pages: false, log: () => undefined, evalBackend: undefined });
const job = await srv.coord.createJob(cfg);
const w = spawnDenoWorker(srv.url, { backend: 'cpu', name: 'bench', extra: ['--exit-when-done', '--quiet', ...(f.trace ? ['--trace'] : [])] });
// The clock starts at the first lease (Deno's start-up and the first blob downloads excluded), like the trainer's after loading.
let first = 0;
let afterFirst = 0;
srv.coord.events.subscribe((e) => {
  if (e.type === 'worker' && e.change === 'joined') first = performance.now();
  if (e.type === 'iteration' && e.metrics.iteration === 0) afterFirst = performance.now();
});
await srv.coord.action(job.id, 'start');
await new Promise<void>((r) => {
  const off = srv.coord.events.subscribe((e) => {
    if (e.type === 'job' && e.state === 'done') {
      off();
      r();
    }
  });
});
const end = performance.now();
const distSeconds = (end - (first || t0)) / 1000;
const m = srv.coord.metrics(job.id).iterations;
const distExamples = m.reduce((a, r) => a + r.count, 0);
const distRate = distExamples / distSeconds;
const distSteady = (distExamples - m[0]!.count) / ((end - afterFirst) / 1000);
const mb = m.reduce((a, r) => a + r.bytesIn + r.bytesOut, 0) / 1e6;
console.log(`coordinator + 1 Deno worker: ${m.length} iterations, ${distExamples} examples in ${distSeconds.toFixed(2)} s = ${distRate.toFixed(0)} examples/s; after iteration 0: ${distSteady.toFixed(0)} examples/s (${mb.toFixed(0)} MB over loopback)`);
const perf = srv.coord.perf;
console.log(`coordinator per iteration: update ${((1000 * perf.updateSeconds) / perf.iterations).toFixed(1)} ms, publish (encode + SHA-256 + tasks) ${((1000 * perf.publishSeconds) / perf.iterations).toFixed(1)} ms; per result: decode + validate ${((1000 * perf.validateSeconds) / perf.results).toFixed(1)} ms, aggregate ${((1000 * perf.aggregateSeconds) / perf.results).toFixed(1)} ms`);
console.log(`ratio distributed / in-process: whole run ${(distRate / inRate).toFixed(3)}, after iteration 0 ${(distSteady / inSteady).toFixed(3)} (goal >= 0.9)`);
await new Promise((r) => w.once('exit', r));
await srv.close();
rmSync(dir, { recursive: true, force: true });
