/**
 * The training modes end to end with real processes: the coordinator in this
 * process, 2 Deno workers (`deno run -A client/deno/worker.ts`). A local-SGD
 * job with int8 results and int8 weight deltas trains the in-process
 * trainer's weights (the Deno workers hold the coordinator's published
 * weights bit for bit, or the coordinator would refuse their results with
 * unknown-version), and the weights the coordinator sends are deltas, not
 * whole models.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createCpuBackend } from '../../core/cpu/index.ts';
import { parseJobConfig } from '../../core/model/config.ts';
import { tensorShapes } from '../../core/model/params.ts';
import { decodeWeights } from '../../core/protocol/index.ts';
import { spawnDenoWorker } from '../../coordinator/cli/main.ts';
import { startServer, type RunningServer } from '../../coordinator/server.ts';
import { Trainer } from '../../coordinator/trainer.ts';
import { dataFor, maxAbsDiff, MNIST_DIR, waitFor } from '../coordinator/harness.ts';

const TOKEN = 'e2e-admin-token-0123456789';

const BASE = {
  name: 'e2e-local-sgd',
  layers: [784, 48, 10],
  trainLimit: 2_000,
  testLimit: 500,
  partitions: 4,
  seed: 5,
  pretrain: { epochs: 1, batchSize: 100 },
  finetune: { epochs: 4, batchSize: 100, learningRate: { start: 0.5, decay: 1, min: 0.5 } },
  checkpointEvery: 1000,
};

const children: ChildProcess[] = [];
let server: RunningServer | undefined;
let dir: string | undefined;

afterEach(async () => {
  for (const p of children.splice(0)) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  await server?.close();
  server = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

function exited(p: ChildProcess): Promise<number | null> {
  return p.exitCode !== null || p.signalCode !== null ? Promise.resolve(p.exitCode) : new Promise((r) => p.once('exit', (code) => r(code)));
}

async function run(training: object): Promise<{ diff: number; out: number; whole: number; partitions: number }> {
  const cfg = parseJobConfig({ ...BASE, training });
  dir = mkdtempSync(join(tmpdir(), 'tessera-e2e-modes-'));
  server = await startServer({ port: 0, dataDir: join(dir, 'data'), adminToken: TOKEN, mnistDir: MNIST_DIR, pages: false, log: () => undefined, heartbeatMs: 500 });
  const srv = server;
  const job = await srv.coord.createJob(cfg);
  await srv.coord.action(job.id, 'start');
  const ws = ['e2e-ls-a', 'e2e-ls-b'].map((name) => {
    const p = spawnDenoWorker(srv.url, { backend: 'cpu', cache: join(dir!, name), name, extra: ['--exit-when-done', '--quiet'] });
    children.push(p);
    return p;
  });
  await waitFor(() => srv.coord.summary(job.id).state === 'done', 120_000, 'the job to finish');
  expect(await Promise.all(ws.map(exited))).toEqual([0, 0]);
  const s = srv.coord.summary(job.id);
  // 20 iterations per epoch, 4 partitions: 5 local steps in pre-training (rounds of 3, 2), 20 in fine-tuning (7 rounds)
  expect(s.totalIterations).toBe(9);
  // no result refused: every one named weights bit-identical to the coordinator's published version (else 409 unknown-version)
  expect(s.rejectedResults).toBe(0);
  const tasks = srv.coord.store.tasksOf(job.id);
  expect(tasks.length).toBe(9 * 4);
  expect(tasks.every((t) => t.state === 'done')).toBe(true);
  const res = await fetch(`${srv.url}/api/v1/admin/jobs/${job.id}/weights`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  const got = decodeWeights(new Uint8Array(await res.arrayBuffer()), tensorShapes(cfg)).params;
  const tr = new Trainer({ backend: await createCpuBackend(), config: cfg, train: (await dataFor(cfg)).train });
  while (!tr.done) await tr.step();
  const diff = maxAbsDiff(tr.params, got);
  const whole = [...tensorShapes(cfg).values()].reduce((n, sh) => n + 4 * sh.reduce((a, b) => a * b, 1), 0);
  const out = srv.coord.metrics(job.id).iterations.reduce((n, r) => n + r.bytesOut, 0);
  console.log(`e2e ${JSON.stringify(training)}: max abs weight difference vs in-process trainer ${diff.toExponential(2)}; ${(out / 1e6).toFixed(2)} MB out (whole weights ${(whole / 1e6).toFixed(2)} MB); test error ${((s.lastEvaluation?.testError ?? NaN) * 100).toFixed(1)}%`);
  return { diff, out, whole, partitions: 2_000 * (784 + 1) };
}

describe('training modes end to end with Deno workers', () => {
  it('local SGD, float32 both ways, 2 Deno workers: the in-process trainer\'s weights within float-summation tolerance', async () => {
    const r = await run({ mode: 'local-sgd', localSteps: 3, up: 'f32', down: 'f32' });
    expect(r.diff).toBeLessThan(1e-4);
  }, 180_000);

  it('local SGD, int8 both ways, 2 Deno workers: the in-process trainer\'s weights up to a few int8 steps; deltas down, not whole models', async () => {
    const r = await run({ mode: 'local-sgd', localSteps: 3, up: 'int8', down: 'int8', blockSize: 128 });
    // where the summation order (and the Deno CPU backend's) moves M - P across a rounding boundary, one
    // stochastic rounding lands a step away: a step of a block is max |delta| / 127, about 1e-4 to 1e-3 here
    expect(r.diff).toBeLessThan(5e-3);
    // weights out: each worker's first whole download, then int8 deltas (a quarter of a whole model), and the partitions
    expect(r.out).toBeLessThan(2 * r.partitions + 2 * r.whole + 9 * 2 * 0.35 * r.whole);
  }, 180_000);
});
