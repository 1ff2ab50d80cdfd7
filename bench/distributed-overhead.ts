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
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseJobConfig, type JobConfig } from '../client/core/model/config.ts';
import { denoBinary, spawnDenoWorker } from '../coordinator/cli/main.ts';
import { parseFlags, startServer } from '../coordinator/server.ts';
import { runInProcess, type InProcessRun } from './in-process.ts';

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

// In-process, in Node (the coordinator's runtime) and in Deno (the worker's:
// Deno runs WebAssembly with explicit bounds checks, so the same kernels are
// slower there; the Deno baseline isolates the cost of the distributed path).
const jobFile = join(mkdtempSync(join(tmpdir(), 'tessera-job-')), 'job.json');
writeFileSync(jobFile, JSON.stringify(cfg));
const inNode = await runInProcess(cfg, MNIST);
const inDeno = JSON.parse(execFileSync(denoBinary(), ['run', '-A', resolve(import.meta.dirname, 'in-process.ts'), jobFile, MNIST], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } }).trim().split('\n').pop()!) as InProcessRun;
rmSync(dirname(jobFile), { recursive: true, force: true });
for (const r of [inNode, inDeno]) {
  console.log(`in-process trainer (${r.runtime}): ${r.iterations} iterations, ${r.examples} examples in ${r.seconds.toFixed(2)} s = ${(r.examples / r.seconds).toFixed(0)} examples/s; after iteration 0: ${(r.steadyExamples / r.steadySeconds).toFixed(0)} examples/s`);
}

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
const distSeconds = (end - first) / 1000;
const m = srv.coord.metrics(job.id).iterations;
const distExamples = m.reduce((a, r) => a + r.count, 0);
const distRate = distExamples / distSeconds;
const distSteady = (distExamples - m[0]!.count) / ((end - afterFirst) / 1000);
const mb = m.reduce((a, r) => a + r.bytesIn + r.bytesOut, 0) / 1e6;
console.log(`coordinator + 1 Deno worker: ${m.length} iterations, ${distExamples} examples in ${distSeconds.toFixed(2)} s = ${distRate.toFixed(0)} examples/s; after iteration 0: ${distSteady.toFixed(0)} examples/s (${mb.toFixed(0)} MB over loopback)`);
const perf = srv.coord.perf;
console.log(`coordinator per iteration: update ${((1000 * perf.updateSeconds) / perf.iterations).toFixed(1)} ms, publish (encode + SHA-256 + tasks) ${((1000 * perf.publishSeconds) / perf.iterations).toFixed(1)} ms; per result: decode + validate ${((1000 * perf.validateSeconds) / perf.results).toFixed(1)} ms, aggregate ${((1000 * perf.aggregateSeconds) / perf.results).toFixed(1)} ms`);
for (const r of [inNode, inDeno]) {
  const whole = distRate / (r.examples / r.seconds);
  const steady = distSteady / (r.steadyExamples / r.steadySeconds);
  console.log(`ratio distributed / in-process (${r.runtime.split(' ')[0]}): whole run ${whole.toFixed(3)}, after iteration 0 ${steady.toFixed(3)} (goal >= 0.9)`);
}
await new Promise((r) => w.once('exit', r));
await srv.close();
rmSync(dir, { recursive: true, force: true });
