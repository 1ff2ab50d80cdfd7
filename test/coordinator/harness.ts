/**
 * Test scaffolding: a coordinator on a temporary folder with a small MNIST
 * subset, its Hono app, and in-process workers that talk to it through
 * app.request() (no port).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { createCpuBackend } from '../../core/cpu/index.ts';
import { parseJobConfig, type JobConfig } from '../../core/model/config.ts';
import { GridWorker, type WorkerEvent, type WorkerOptions } from '../../client/worker/worker.ts';
import { subset, type Dataset } from '../../core/dataset.ts';
import { loadMnist } from '../../datasets/mnist.ts';
import { createApp } from '../../coordinator/http/app.ts';
import { sha256Hex } from '../../coordinator/auth.ts';
import { Coordinator, type CoordinatorOptions, type TrainTestData } from '../../coordinator/engine/coordinator.ts';

/** The shared MNIST files beside the repository (<repo>/../shared), or $TESSERA_MNIST_DIR (a worktree elsewhere). */
export const MNIST_DIR = process.env.TESSERA_MNIST_DIR ?? join(import.meta.dirname, '../../../shared/datasets/mnist');
export const ADMIN_TOKEN = 'test-admin-token-0123456789';

let mnist: Promise<{ train: Dataset; test: Dataset }> | null = null;

/** MNIST from the shared folder, loaded once per test file. */
export function mnistData(): Promise<{ train: Dataset; test: Dataset }> {
  mnist ??= loadMnist({ source: 'dir', dir: MNIST_DIR });
  return mnist;
}

export async function dataFor(cfg: JobConfig): Promise<TrainTestData> {
  const m = await mnistData();
  return {
    train: cfg.trainLimit ? subset(m.train, cfg.trainLimit) : m.train,
    test: cfg.testLimit ? subset(m.test, cfg.testLimit) : m.test,
  };
}

/** A small DBN job that runs in a second or two: 2 RBMs, then fine-tuning. */
export const SMALL_JOB: JobConfig = parseJobConfig({
  name: 'small',
  layers: [784, 24, 16, 10],
  trainLimit: 600,
  testLimit: 200,
  partitions: 3,
  seed: 7,
  pretrain: { epochs: 1, batchSize: 100 },
  finetune: { epochs: 1, batchSize: 100 },
  checkpointEvery: 4,
});

export interface Rig {
  readonly coord: Coordinator;
  readonly app: ReturnType<typeof createApp>;
  readonly dir: string;
  readonly fetch: (input: string, init?: RequestInit) => Promise<Response>;
  admin(path: string, init?: RequestInit): Promise<Response>;
  close(): Promise<void>;
}

export async function makeRig(opts: Partial<CoordinatorOptions> = {}, dir?: string): Promise<Rig> {
  const folder = dir ?? mkdtempSync(join(tmpdir(), 'tessera-coord-'));
  const coord = await Coordinator.open({
    dataDir: folder,
    loadData: dataFor,
    evalBackend: () => createCpuBackend(),
    leaseTimeoutMs: 10_000,
    heartbeatMs: 1_000,
    ...opts,
  });
  const app = createApp(coord, { adminTokenHash: sha256Hex(ADMIN_TOKEN), rateLimit: { perSecond: 10_000, burst: 10_000 } });
  // Like a real client, give binary bodies their length (the coordinator reads those into WebAssembly memory).
  const fetch = async (input: string, init?: RequestInit): Promise<Response> => {
    if (init?.body instanceof Uint8Array) init = { ...init, headers: { ...(init.headers as Record<string, string>), 'content-length': String(init.body.length) } };
    return await app.request(input, init);
  };
  return {
    coord,
    app,
    dir: folder,
    fetch,
    admin: async (path, init = {}) => await app.request(path, { ...init, headers: { ...(init.headers ?? {}), Authorization: `Bearer ${ADMIN_TOKEN}` } }),
    close: async () => {
      await coord.close();
      if (!dir) rmSync(folder, { recursive: true, force: true });
    },
  };
}

export async function inProcessWorker(rig: Rig, name: string, extra: Partial<WorkerOptions> = {}, events?: WorkerEvent[]): Promise<GridWorker> {
  return new GridWorker({
    coordinator: 'http://coordinator.test',
    backend: await createCpuBackend(),
    name,
    runtime: 'node',
    fetch: rig.fetch,
    leaseWaitMs: 2_000,
    exitWhenDone: true,
    onEvent: events ? (e) => events.push(e) : undefined,
    ...extra,
  });
}

/** Creates and starts a job through the admin API; returns its id. */
export async function startJob(rig: Rig, cfg: JobConfig): Promise<string> {
  const res = await rig.admin('/api/v1/admin/jobs', { method: 'POST', body: JSON.stringify(cfg), headers: { 'content-type': 'application/json' } });
  if (res.status !== 201) throw new Error(`create job: ${res.status} ${await res.text()}`);
  const { id } = (await res.json()) as { id: string };
  const st = await rig.admin(`/api/v1/admin/jobs/${id}/start`, { method: 'POST' });
  if (st.status !== 200) throw new Error(`start job: ${st.status} ${await st.text()}`);
  return id;
}

export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function maxAbsDiff(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  let worst = 0;
  for (const [name, x] of a) {
    const y = b.get(name);
    if (!y || y.length !== x.length) throw new Error(`tensor ${name} differs in presence or length`);
    for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i]! - y[i]!));
  }
  return worst;
}

/** Every task of the job done, by exactly one lease; every iteration's metrics count all its tasks' examples. */
export function ledgerCountsEachTaskOnce(rig: Rig, id: string): void {
  const s = rig.coord.summary(id);
  const tasks = rig.coord.store.tasksOf(id);
  expect(tasks.length).toBe(s.totalIterations * SMALL_JOB.partitions);
  expect(tasks.every((t) => t.state === 'done')).toBe(true);
  const done = rig.coord.store.leasesOf(id).filter((l) => l.state === 'done');
  expect(done.length).toBe(tasks.length);
  expect(new Set(done.map((l) => l.task_id)).size).toBe(tasks.length);
  // every iteration's metrics counted all its tasks' examples
  const metrics = rig.coord.metrics(id).iterations;
  expect(metrics.length).toBe(s.totalIterations);
  for (const m of metrics) {
    const expected = tasks.filter((t) => t.iteration === m.iteration).reduce((a, t) => a + t.count, 0);
    expect(m.count).toBe(expected);
  }
}
