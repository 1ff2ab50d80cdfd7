/**
 * End to end with real processes: the coordinator (in this process, or its
 * own process for the SIGKILL test) and Deno workers (`deno run -A
 * client/deno/worker.ts`).
 *
 * - 2 Deno workers train a 784-256-10 DBN on a 10,000-example MNIST subset
 *   to under 10% test error on the 10,000 test images (175 iterations; the
 *   in-process trainer reaches 7.06% on this job).
 * - A Deno worker SIGKILLed while holding a lease: the lease expires and is
 *   re-issued, and every task is counted once in the ledger.
 * - The coordinator SIGKILLed mid-job and restarted on the same folder: the
 *   job finishes from its last checkpoint, with the same weights as the
 *   in-process trainer.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createCpuBackend } from '../../core/cpu/index.ts';
import { parseJobConfig, type JobConfig } from '../../core/model/config.ts';
import { tensorShapes } from '../../core/model/params.ts';
import { decodeWeights } from '../../core/protocol/index.ts';
import { spawnDenoWorker } from '../../coordinator/cli/main.ts';
import { startServer, type RunningServer } from '../../coordinator/server.ts';
import { Trainer } from '../../coordinator/trainer.ts';
import { encodePartition } from '../../core/protocol/partition.ts';
import { partitionDataset } from '../../datasets/partition.ts';
import { dataFor, MNIST_DIR, waitFor } from '../coordinator/harness.ts';

const REPO = resolve(import.meta.dirname, '../..');
const TOKEN = 'e2e-admin-token-0123456789';

const E2E_JOB: JobConfig = parseJobConfig({
  name: 'e2e-784-256-10',
  layers: [784, 256, 10],
  trainLimit: 10_000,
  testLimit: 10_000,
  partitions: 2,
  seed: 3,
  pretrain: { epochs: 0.5, batchSize: 200, learningRate: { start: 0.1, decay: 1, min: 0.1 } },
  finetune: { epochs: 3, batchSize: 200, learningRate: { start: 1.5, decay: 0.9, min: 0.01 } },
  checkpointEvery: 100,
});

const FAULT_JOB: JobConfig = parseJobConfig({
  name: 'faults',
  layers: [784, 48, 10],
  trainLimit: 2_000,
  testLimit: 500,
  partitions: 2,
  seed: 11,
  pretrain: { epochs: 1, batchSize: 100 },
  finetune: { epochs: 2, batchSize: 100, learningRate: { start: 0.5, decay: 1, min: 0.5 } },
  checkpointEvery: 5,
});

const children: ChildProcess[] = [];
const dirs: string[] = [];
let server: RunningServer | undefined;

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'tessera-e2e-'));
  dirs.push(d);
  return d;
}

function exited(p: ChildProcess): Promise<number | null> {
  return p.exitCode !== null || p.signalCode !== null ? Promise.resolve(p.exitCode) : new Promise((r) => p.once('exit', (code) => r(code)));
}

function worker(url: string, name: string, extra: string[] = [], cache = join(tmp(), 'cache')): ChildProcess {
  const p = spawnDenoWorker(url, { backend: 'cpu', cache, name, extra: ['--exit-when-done', '--quiet', ...extra] });
  children.push(p);
  return p;
}

afterEach(async () => {
  for (const p of children.splice(0)) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  await server?.close();
  server = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function serve(opts: { leaseTimeoutMs?: number } = {}): Promise<RunningServer> {
  server = await startServer({ port: 0, dataDir: tmp(), adminToken: TOKEN, mnistDir: MNIST_DIR, pages: false, log: () => undefined, heartbeatMs: 500, ...opts });
  return server;
}

describe('end to end with Deno workers', () => {
  it('2 Deno workers train a 784-256-10 DBN on 10,000 MNIST examples to under 10% test error', async () => {
    const srv = await serve();
    const job = await srv.coord.createJob(E2E_JOB);
    await srv.coord.action(job.id, 'start');
    const t0 = Date.now();
    const ws = [worker(srv.url, 'e2e-a'), worker(srv.url, 'e2e-b')];
    await waitFor(() => srv.coord.summary(job.id).state === 'done', 150_000, 'the job to finish');
    const seconds = (Date.now() - t0) / 1000;
    const s = srv.coord.summary(job.id);
    console.log(`e2e: ${s.totalIterations} iterations in ${seconds.toFixed(1)} s with 2 Deno workers; test error ${(s.lastEvaluation!.testError * 100).toFixed(2)}%`);
    expect(s.lastEvaluation!.testError).toBeLessThan(0.1);
    const codes = await Promise.all(ws.map(exited));
    expect(codes).toEqual([0, 0]);
    const workers = srv.coord.workers();
    expect(workers.length).toBe(2);
    for (const w of workers) {
      expect(w.tasksDone).toBeGreaterThan(0);
      expect(w.state).toBe('left');
      expect(w.runtime).toBe('deno');
    }
    expect(workers.reduce((a, w) => a + w.tasksDone, 0)).toBe(s.totalIterations * E2E_JOB.partitions);
  }, 180_000);

  for (const perLease of [1, 2]) {
    it(`a Deno worker SIGKILLed mid-task (${perLease} task(s) per lease): its leases are re-issued and every task is counted once`, async () => {
      const srv = await serve({ leaseTimeoutMs: 1_500 });
      const job = await srv.coord.createJob(FAULT_JOB);
      await srv.coord.action(job.id, 'start');
      const victim = worker(srv.url, 'victim', ['--delay-upload-ms', '60000', '--tasks-per-lease', String(perLease)]);
      const active = () => srv.coord.store.leasesOf(job.id).filter((l) => l.state === 'active');
      await waitFor(() => active().length === perLease, 30_000, 'the victim to hold its leases');
      const lease = active()[0]!;
      victim.kill('SIGKILL');
      await exited(victim);
      const rescuer = worker(srv.url, 'rescuer');
      await waitFor(() => srv.coord.summary(job.id).state === 'done', 60_000, 'the job to finish');
      expect(await exited(rescuer)).toBe(0);
      const leases = srv.coord.store.leasesOf(job.id);
      expect(leases.find((l) => l.id === lease.id)!.state).toBe('expired');
      const forTask = leases.filter((l) => l.task_id === lease.task_id);
      expect(forTask.filter((l) => l.state === 'done').length).toBe(1);
      const tasks = srv.coord.store.tasksOf(job.id);
      expect(tasks.length).toBe(srv.coord.summary(job.id).totalIterations * FAULT_JOB.partitions);
      expect(tasks.every((t) => t.state === 'done')).toBe(true);
      const done = leases.filter((l) => l.state === 'done');
      expect(done.length).toBe(tasks.length);
      expect(new Set(done.map((l) => l.task_id)).size).toBe(tasks.length);
      expect(tasks.find((t) => t.id === lease.task_id)!.attempts).toBe(2);
    }, 90_000);
  }

  it('a damaged partition in a Deno worker\'s disk cache is caught by its hash, deleted, downloaded again', async () => {
    const parts = partitionDataset((await dataFor(FAULT_JOB)).train, FAULT_JOB.partitions);
    const good = encodePartition(parts[0]!);
    const hash = createHash('sha256').update(good).digest('hex');
    const cache = join(tmp(), 'cache');
    mkdirSync(cache);
    const damaged = good.slice();
    damaged[damaged.length >> 1]! ^= 0x10; // one pixel: still decodes, only the hash tells
    writeFileSync(join(cache, hash), damaged);
    const srv = await serve();
    const job = await srv.coord.createJob(FAULT_JOB);
    await srv.coord.action(job.id, 'start');
    const w = worker(srv.url, 'damaged-disk', [], cache);
    await waitFor(() => srv.coord.summary(job.id).state === 'done', 60_000, 'the job to finish');
    expect(await exited(w)).toBe(0);
    // the damaged copy was replaced by the verified download
    expect(readFileSync(join(cache, hash)).equals(Buffer.from(good))).toBe(true);
    // its first task was given back (nothing computed from the damaged copy was uploaded), then done
    const leases = srv.coord.store.leasesOf(job.id);
    expect(leases.filter((l) => l.state === 'returned').length).toBe(1);
    expect(leases.filter((l) => l.state === 'expired')).toEqual([]);
    const tasks = srv.coord.store.tasksOf(job.id);
    expect(leases.filter((l) => l.state === 'done').length).toBe(tasks.length);
  }, 90_000);

  it('the coordinator SIGKILLed mid-job and restarted resumes from its checkpoint to the in-process weights', async () => {
    const dir = tmp();
    const jobFile = join(dir, 'job.json');
    writeFileSync(jobFile, JSON.stringify(FAULT_JOB));
    const port = 20_000 + Math.floor(Math.random() * 10_000); // below Linux's ephemeral range
    const url = `http://127.0.0.1:${port}`;
    const logs: string[] = [];
    const coordinator = (extra: string[]): ChildProcess => {
      // node --import tsx: one process (the tsx binary would leave its child running after a SIGKILL)
      const p = spawn(process.execPath, ['--import', 'tsx', 'coordinator/server.ts', '--port', String(port), '--data', join(dir, 'data'), '--admin-token', TOKEN, '--heartbeat-ms', '500', ...extra], {
        cwd: REPO,
        env: { ...process.env, TESSERA_MNIST_DIR: MNIST_DIR },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      p.stdout!.on('data', (b: Buffer) => logs.push(b.toString()));
      children.push(p);
      return p;
    };
    const status = async (): Promise<{ job: { iteration: number; totalIterations: number; state: string } | null } | null> => {
      try {
        return (await (await fetch(`${url}/api/v1/status`)).json()) as { job: { iteration: number; totalIterations: number; state: string } | null };
      } catch {
        return null;
      }
    };
    const first = coordinator(['--job', jobFile, '--start']);
    await waitFor(async () => (await status())?.job != null, 30_000, 'the coordinator to start');
    worker(url, 'survivor', ['--delay-upload-ms', '15']);
    await waitFor(async () => ((await status())?.job?.iteration ?? 0) >= 13, 60_000, 'iteration 13');
    first.kill('SIGKILL');
    await exited(first);
    const killedAt = logs.join('');
    expect(killedAt).not.toMatch(/done/);
    coordinator([]);
    const admin = { Authorization: `Bearer ${TOKEN}` };
    let jobId = '';
    await waitFor(async () => {
      try {
        const r = (await (await fetch(`${url}/api/v1/admin/jobs`, { headers: admin })).json()) as { jobs: { id: string; state: string }[] };
        jobId = r.jobs[0]?.id ?? '';
        return r.jobs[0]?.state === 'done';
      } catch {
        return false;
      }
    }, 90_000, 'the restarted coordinator to finish the job');
    const resumed = /resuming at iteration (\d+)/.exec(logs.join(''));
    expect(resumed).not.toBeNull();
    expect(Number(resumed![1])).toBeGreaterThanOrEqual(10);
    const metrics = (await (await fetch(`${url}/api/v1/admin/jobs/${jobId}/metrics`, { headers: admin })).json()) as { iterations: { iteration: number }[] };
    const its = metrics.iterations.map((m) => m.iteration);
    expect(its).toEqual(Array.from({ length: its.length }, (_, i) => i));
    const weights = decodeWeights(new Uint8Array(await (await fetch(`${url}/api/v1/admin/jobs/${jobId}/weights`, { headers: admin })).arrayBuffer()), tensorShapes(FAULT_JOB));
    const data = await dataFor(FAULT_JOB);
    const tr = new Trainer({ backend: await createCpuBackend(), config: FAULT_JOB, train: data.train });
    while (!tr.done) await tr.step();
    expect(weights.version).toBe(tr.plan.totalIterations);
    expect(its.length).toBe(tr.plan.totalIterations);
    let worst = 0;
    for (const [name, w] of tr.params) {
      const got = weights.params.get(name)!;
      for (let i = 0; i < w.length; i++) worst = Math.max(worst, Math.abs(got[i]! - w[i]!));
    }
    console.log(`coordinator restart: resumed at iteration ${resumed![1]}; max abs weight difference vs in-process ${worst.toExponential(2)}`);
    expect(worst).toBeLessThan(1e-4);
  }, 150_000);
});
