/**
 * Training modes through a real coordinator on loopback with Deno workers
 * (CPU backend): wall time, test error, and the bytes that crossed the
 * coordinator per trained example (result bodies in, blobs out: weights,
 * deltas, partitions; IterationMetricsRow.bytesIn / bytesOut), for today's
 * sync fp32 mode and the modes of core/model/training.ts.
 *
 *   nice npx tsx bench/modes-grid.ts [--workers 2] [--train 6000] [--layers 784,200,10] [--partitions 8] [--finetune-epochs 5] [--H 20] [--only 0,3]
 *
 * No link shaping (bench/scaling/ is the rig for that); on this shared
 * 2-core machine the workers compete for CPU, so the wall times say little;
 * bytes and test errors are the figures to read.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { DEFAULT_JOB, parseJobConfig } from '../core/model/config.ts';
import { describeTraining } from '../core/model/training.ts';
import { spawnDenoWorker } from '../coordinator/cli/main.ts';
import { parseFlags, startServer } from '../coordinator/server.ts';

const f = parseFlags(process.argv.slice(2));
const str = (k: string, d: string): string => (typeof f[k] === 'string' ? (f[k] as string) : d);
const nWorkers = Number(str('workers', '2'));
const H = Number(str('H', '20'));
const P = Number(str('partitions', '8'));
const base = {
  ...DEFAULT_JOB,
  name: 'modes-grid',
  layers: str('layers', '784,200,10').split(',').map(Number),
  trainLimit: Number(str('train', '6000')),
  testLimit: Number(str('test', '2000')),
  partitions: P,
  pretrain: { ...DEFAULT_JOB.pretrain, epochs: Number(str('pretrain-epochs', '1')) },
  finetune: { ...DEFAULT_JOB.finetune, epochs: Number(str('finetune-epochs', '5')) },
  checkpointEvery: 100_000,
};
const variants: [string, object | undefined][] = [
  ['sync fp32 (today)', undefined],
  ['sync, f32 changed tensors down', { mode: 'sync', up: 'f32', down: 'f32' }],
  ['sync, int8 both ways', { mode: 'sync', up: 'int8', down: 'int8' }],
  [`local-sgd H=${H}, int8`, { mode: 'local-sgd', localSteps: H, up: 'int8', down: 'int8' }],
];
const only = typeof f.only === 'string' ? f.only.split(',').map(Number) : null;
const MNIST = resolve(import.meta.dirname, '../../shared/datasets/mnist');

console.log(`layers ${base.layers.join('-')}, ${base.trainLimit} examples, ${P} partitions, ${nWorkers} Deno workers (cpu, 8 tasks per lease), finetune ${base.finetune.epochs} epochs`);
console.log('| mode | steps | test error | examples | MB in | MB out | bytes / example | vs sync fp32 | wall s |');
console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
let baseline = 0;
for (const [i, [name, training]] of variants.entries()) {
  if (only && !only.includes(i)) continue;
  const cfg = parseJobConfig({ ...base, ...(training ? { training } : {}) });
  const dir = mkdtempSync(join(tmpdir(), 'tessera-modes-grid-'));
  const srv = await startServer({ port: 0, dataDir: dir, adminToken: 'bench-token-0123456789', mnistDir: MNIST, pages: false, log: () => undefined });
  const workers: ChildProcess[] = [];
  try {
    const job = await srv.coord.createJob(cfg);
    await srv.coord.action(job.id, 'start');
    const t0 = Date.now();
    for (let w = 0; w < nWorkers; w++) workers.push(spawnDenoWorker(srv.url, { backend: 'cpu', name: `bench-${w}`, extra: ['--exit-when-done', '--quiet', '--tasks-per-lease', '8'] }));
    while (srv.coord.summary(job.id).state !== 'done') await new Promise((r) => setTimeout(r, 200));
    const wall = (Date.now() - t0) / 1000;
    const s = srv.coord.summary(job.id);
    const rows = srv.coord.metrics(job.id).iterations;
    const bytesIn = rows.reduce((a, r) => a + r.bytesIn, 0);
    const bytesOut = rows.reduce((a, r) => a + r.bytesOut, 0);
    const examples = rows.reduce((a, r) => a + r.count, 0);
    const perEx = (bytesIn + bytesOut) / examples;
    if (!baseline && i === 0) baseline = perEx;
    console.log(`| ${name} (${describeTraining(cfg)}) | ${s.totalIterations} | ${((s.lastEvaluation?.testError ?? NaN) * 100).toFixed(2)}% | ${examples} | ${(bytesIn / 1e6).toFixed(1)} | ${(bytesOut / 1e6).toFixed(1)} | ${perEx.toFixed(0)} | ${baseline ? `${(baseline / perEx).toFixed(0)}x fewer` : ''} | ${wall.toFixed(0)} |`);
  } finally {
    for (const w of workers) if (w.exitCode === null) w.kill('SIGTERM');
    await srv.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
process.exit(0);
