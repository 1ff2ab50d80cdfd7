/**
 * Overhead of the distributed path: the same job trained by the in-process
 * trainer and by the coordinator with one local Deno worker (CPU backend),
 * examples per second of each and their ratio (goal: >= 0.9).
 *
 *   nice npx tsx bench/distributed-overhead.ts [--batch 1000|100] [--partitions P] [--tasks-per-lease N] [--rounds 3] [--job job.json] [--trace]
 *
 * Default job: 784-500-500-2000-10 fine-tuning on 10,000 MNIST examples,
 * 10 iterations of batch 1000 (--batch 100: 30 iterations), one task per
 * iteration (--partitions 1).
 *
 * Every side uses the CPU backend in one thread; the coordinator runs in this
 * process, the worker in its own Deno process. The in-process trainer runs in
 * Node and in Deno: Deno runs WebAssembly with explicit bounds checks (it does
 * not enable V8's trap handler, denoland/deno#35658), so the same kernels are
 * slower there, and the Deno baseline isolates the cost of the distributed
 * path. The three runs alternate, `--rounds` times, and the ratios printed
 * last are medians: this machine is shared and noisy.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseJobConfig, type JobConfig } from '../core/model/config.ts';
import { denoBinary, spawnDenoWorker } from '../coordinator/cli/main.ts';
import { parseFlags, startServer } from '../coordinator/server.ts';
import { runInProcess, type InProcessRun } from './in-process.ts';

const f = parseFlags(process.argv.slice(2));
const partitions = typeof f.partitions === 'string' ? Number(f.partitions) : 1;
const rounds = typeof f.rounds === 'string' ? Number(f.rounds) : 3;
const batch = typeof f.batch === 'string' ? Number(f.batch) : 1000;
const perLease = typeof f['tasks-per-lease'] === 'string' ? f['tasks-per-lease'] : '1';
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
        // 10 iterations at batch 1000, 30 at batch 100
        finetune: { epochs: batch >= 1000 ? 1 : 0.3, batchSize: batch },
        checkpointEvery: 1_000_000,
      },
);

interface Rate {
  readonly whole: number;
  /** after iteration 0 */
  readonly steady: number;
}
const rate = (r: InProcessRun): Rate => ({ whole: r.examples / r.seconds, steady: r.steadyExamples / r.steadySeconds });
const median = (xs: number[]): number => {
  const s = [...xs].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const fmt = (r: Rate): string => `${r.whole.toFixed(0)} examples/s (after iteration 0: ${r.steady.toFixed(0)})`;

const jobFile = join(mkdtempSync(join(tmpdir(), 'tessera-job-')), 'job.json');
writeFileSync(jobFile, JSON.stringify(cfg));

/** The in-process trainer in Deno (the worker's runtime), as a subprocess. */
function inDeno(): InProcessRun {
  const out = execFileSync(denoBinary(), ['run', '-A', resolve(import.meta.dirname, 'in-process.ts'), jobFile, MNIST], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  return JSON.parse(out.trim().split('\n').pop()!) as InProcessRun;
}

/** The coordinator here, one Deno worker process; the clock starts at the worker's registration. */
async function distributed(): Promise<Rate> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-bench-'));
  const srv = await startServer({ port: 0, dataDir: dir, adminToken: 'bench-admin-token-0123456789', mnistDir: MNIST, pages: false, log: () => undefined, evalBackend: undefined });
  const job = await srv.coord.createJob(cfg);
  const w = spawnDenoWorker(srv.url, { backend: 'cpu', name: 'bench', extra: ['--exit-when-done', '--quiet', '--tasks-per-lease', perLease, ...(f.trace ? ['--trace'] : [])] });
  // Deno's start-up excluded, like the trainer's data loading; the first blob downloads included.
  let first = 0;
  let afterFirst = 0;
  srv.coord.events.subscribe((e) => {
    if (e.type === 'worker' && e.change === 'joined') first = performance.now();
    if (e.type === 'iteration' && e.metrics.iteration === 0) afterFirst = performance.now();
  });
  const cpu0 = process.cpuUsage();
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
  const cpu = process.cpuUsage(cpu0);
  console.log(`  coordinator process CPU during the run: ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms (user ${(cpu.user / 1000).toFixed(0)}, system ${(cpu.system / 1000).toFixed(0)}) over ${(end - first).toFixed(0)} ms`);
  const m = srv.coord.metrics(job.id).iterations;
  const examples = m.reduce((a, r) => a + r.count, 0);
  const perf = srv.coord.perf;
  const mb = m.reduce((a, r) => a + r.bytesIn + r.bytesOut, 0) / 1e6;
  console.log(
    `  coordinator per iteration: update ${((1000 * perf.updateSeconds) / perf.iterations).toFixed(1)} ms, publish (encode + SHA-256 + tasks) ${((1000 * perf.publishSeconds) / perf.iterations).toFixed(1)} ms; ` +
      `per result: decode + validate ${((1000 * perf.validateSeconds) / perf.results).toFixed(1)} ms, aggregate ${((1000 * perf.aggregateSeconds) / perf.results).toFixed(1)} ms; ${mb.toFixed(0)} MB over loopback`,
  );
  await new Promise((r) => w.once('exit', r));
  await srv.close();
  rmSync(dir, { recursive: true, force: true });
  return { whole: examples / ((end - first) / 1000), steady: (examples - m[0]!.count) / ((end - afterFirst) / 1000) };
}

console.log(`job: ${cfg.layers.join('-')}, ${cfg.trainLimit} examples, batch ${cfg.finetune.batchSize}, ${cfg.partitions} partition(s), worker takes up to ${perLease} task(s) per lease; ${rounds} rounds, each: in-process in Node, in-process in Deno, coordinator + 1 Deno worker`);
const ratios = { node: [] as number[], deno: [] as number[], nodeSteady: [] as number[], denoSteady: [] as number[] };
for (let i = 1; i <= rounds; i++) {
  const n = rate(await runInProcess(cfg, MNIST));
  const d = rate(inDeno());
  const x = await distributed();
  console.log(`round ${i}: in-process Node ${fmt(n)}; in-process Deno ${fmt(d)}; distributed ${fmt(x)}`);
  ratios.node.push(x.whole / n.whole);
  ratios.deno.push(x.whole / d.whole);
  ratios.nodeSteady.push(x.steady / n.steady);
  ratios.denoSteady.push(x.steady / d.steady);
  console.log(`  ratio distributed / in-process: vs Node ${(x.whole / n.whole).toFixed(3)} (after iteration 0: ${(x.steady / n.steady).toFixed(3)}), vs Deno ${(x.whole / d.whole).toFixed(3)} (after iteration 0: ${(x.steady / d.steady).toFixed(3)})`);
}
rmSync(dirname(jobFile), { recursive: true, force: true });
console.log(`median of ${rounds} rounds, ratio distributed / in-process (goal >= 0.9):`);
console.log(`  vs the in-process trainer in Deno (same runtime as the worker): whole run ${median(ratios.deno).toFixed(3)}, after iteration 0 ${median(ratios.denoSteady).toFixed(3)}`);
console.log(`  vs the in-process trainer in Node (the coordinator's runtime):  whole run ${median(ratios.node).toFixed(3)}, after iteration 0 ${median(ratios.nodeSteady).toFixed(3)}`);
