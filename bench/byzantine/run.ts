/**
 * One Byzantine scenario: a coordinator on a temporary folder, its real HTTP
 * API through app.request() (no port), n in-process workers (the real
 * GridWorker loop on the CPU backend, each registering from its own /24),
 * m of them Byzantine (attacks.ts), one small job to the end; the final test
 * error, the bans and the checking figures.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCpuBackend } from '../../core/cpu/index.ts';
import { parseJobConfig, type JobConfig } from '../../core/model/config.ts';
import { GridWorker } from '../../client/worker/worker.ts';
import { subset, type Dataset } from '../../core/dataset.ts';
import { loadMnist } from '../../datasets/mnist.ts';
import { createApp } from '../../coordinator/http/app.ts';
import { sha256Hex } from '../../coordinator/auth.ts';
import { Coordinator, type CoordinatorOptions } from '../../coordinator/engine/coordinator.ts';
import { byzantineBackend, createCollusion, type AttackName, type ByzantineBackend } from './attacks.ts';

const ADMIN = 'byzantine-bench-admin-token';
const MNIST_DIR = join(import.meta.dirname, '../../../shared/datasets/mnist');

let mnist: Promise<{ train: Dataset; test: Dataset }> | null = null;
function mnistData(): Promise<{ train: Dataset; test: Dataset }> {
  mnist ??= loadMnist({ source: 'auto', dir: process.env.TESSERA_MNIST_DIR ?? MNIST_DIR });
  return mnist;
}

/** The job: 784-64-10 on 3,000 MNIST examples; 16 partitions, one per worker. */
export function benchJob(over: Record<string, unknown> = {}): JobConfig {
  return parseJobConfig({
    name: 'byzantine',
    layers: [784, 64, 10],
    trainLimit: 3000,
    testLimit: 0,
    partitions: 16,
    seed: 7,
    pretrain: { epochs: 1, batchSize: 300 },
    finetune: { epochs: 10, batchSize: 300, learningRate: { start: 0.3, decay: 0.93, min: 0.01 } },
    checkpointEvery: 10,
    ...over,
  });
}

export interface Scenario {
  readonly workers: number;
  readonly byzantine: number;
  readonly attack?: AttackName;
  readonly job?: JobConfig;
  readonly coordinator?: Partial<CoordinatorOptions>;
  /** admin-API job fields beyond the JobConfig (e.g. the trust policy once it exists) */
  readonly jobExtra?: Record<string, unknown>;
  readonly log?: (msg: string) => void;
  /** called at the end, before the coordinator closes (tests read its ledger) */
  readonly inspect?: (coord: Coordinator, jobId: string, byzantineIds: readonly string[]) => void | Promise<void>;
}

export interface ScenarioResult {
  readonly attack: AttackName | 'none';
  readonly workers: number;
  readonly byzantine: number;
  readonly testError: number;
  readonly seconds: number;
  readonly iterations: number;
  /** uploads the Byzantine workers rewrote */
  readonly rewritten: number;
  /** the coordinator's view of every worker (WorkerRow plus whatever trust fields it has) */
  readonly workerRows: Record<string, unknown>[];
  readonly byzantineIds: string[];
  /** per Byzantine worker: its results the coordinator accepted before its first 403 banned (null: never banned) */
  readonly resultsToBan: (number | null)[];
  /** checking overhead (examples recomputed / examples counted) over the whole job and over its second half */
  readonly overhead: number;
  readonly steadyOverhead: number;
  readonly jobId: string;
  readonly summary: Record<string, unknown>;
}

export async function runScenario(s: Scenario): Promise<ScenarioResult> {
  const cfg = s.job ?? benchJob();
  const dir = mkdtempSync(join(tmpdir(), 'tessera-byz-'));
  const normBoundPerExample = s.coordinator?.normBoundPerExample ?? 1e4;
  const coord = await Coordinator.open({
    dataDir: dir,
    loadData: async (c) => {
      const m = await mnistData();
      return { train: c.trainLimit ? subset(m.train, c.trainLimit) : m.train, test: c.testLimit ? subset(m.test, c.testLimit) : m.test };
    },
    evalBackend: () => createCpuBackend(),
    leaseTimeoutMs: 20_000,
    heartbeatMs: 2_000,
    workerTimeoutMs: 60_000,
    ...s.coordinator,
  });
  const app = createApp(coord, { adminTokenHash: sha256Hex(ADMIN), rateLimit: { perSecond: 100_000, burst: 100_000 } });
  const admin = async (path: string, init: RequestInit = {}): Promise<Response> =>
    await app.request(path, { ...init, headers: { ...(init.headers ?? {}), Authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' } });
  const t0 = performance.now();
  try {
    const created = await admin('/api/v1/admin/jobs', { method: 'POST', body: JSON.stringify({ ...cfg, ...s.jobExtra }) });
    if (created.status !== 201) throw new Error(`create job: ${created.status} ${await created.text()}`);
    const { id } = (await created.json()) as { id: string };
    const started = await admin(`/api/v1/admin/jobs/${id}/start`, { method: 'POST' });
    if (started.status !== 200) throw new Error(`start job: ${started.status} ${await started.text()}`);

    const collusion = createCollusion(s.workers, s.byzantine, normBoundPerExample);
    const accepted: number[] = [];
    const bannedAfter: (number | null)[] = [];
    const byz: ByzantineBackend[] = [];
    const workers: GridWorker[] = [];
    for (let i = 0; i < s.workers; i++) {
      const cpu = await createCpuBackend();
      const bad = i < s.byzantine && s.attack ? byzantineBackend(cpu, s.attack, collusion) : null;
      if (bad) byz.push(bad);
      const k = byz.length - 1;
      if (bad) {
        accepted[k] = 0;
        bannedAfter[k] = null;
      }
      // each worker registers from its own /24 (the coordinator reads the socket's address)
      const env = { incoming: { socket: { remoteAddress: `10.${i}.0.1` } } };
      const fetch = async (input: string, init?: RequestInit): Promise<Response> => {
        if (init?.body instanceof Uint8Array) init = { ...init, headers: { ...(init.headers as Record<string, string>), 'content-length': String(init.body.length) } };
        const res = await app.request(input, init, env);
        if (bad && res.status === 200 && init?.method === 'PUT') accepted[k]!++;
        if (bad && res.status === 403) {
          bad.leave();
          bannedAfter[k] ??= accepted[k]!;
        }
        return res;
      };
      workers.push(new GridWorker({ coordinator: 'http://coordinator.test', backend: bad ?? cpu, name: bad ? `byzantine-${i}` : `honest-${i}`, runtime: 'node', fetch, leaseWaitMs: 2_000, exitWhenDone: true }));
    }
    // the checking figures at half-time, for the steady state
    type Figures = { checkedExamples: number; acceptedExamples: number };
    let half: Figures | null = null;
    const total = coord.summary(id).totalIterations;
    const poll = setInterval(() => {
      const sm = coord.summary(id) as unknown as { iteration: number; trust: Figures };
      if (!half && sm.iteration >= total / 2) half = { ...sm.trust };
    }, 20);
    const running = workers.map((w) => w.start());
    // honest workers end when the job is done; a banned one keeps being refused: stop it then
    await Promise.race([Promise.all(running.slice(s.byzantine)), coord.idle().then(() => waitDone(coord, id))]);
    await waitDone(coord, id);
    await coord.idle();
    await Promise.all(workers.map((w) => w.stop()));
    clearInterval(poll);
    const summary = coord.summary(id) as unknown as Record<string, unknown> & { lastEvaluation: { testError: number } | null; iteration: number; trust: Figures & { overhead: number } };
    const h = half ?? { checkedExamples: 0, acceptedExamples: 0 };
    const steadyOverhead = (summary.trust.checkedExamples - h.checkedExamples) / Math.max(1, summary.trust.acceptedExamples - h.acceptedExamples);
    const rows = ((await (await admin('/api/v1/admin/workers')).json()) as { workers: Record<string, unknown>[] }).workers;
    const byzantineIds = workers.slice(0, s.attack ? s.byzantine : 0).map((w) => w.workerId).filter((x): x is string => !!x);
    const result: ScenarioResult = {
      attack: s.attack && s.byzantine ? s.attack : 'none',
      workers: s.workers,
      byzantine: s.attack ? s.byzantine : 0,
      testError: summary.lastEvaluation?.testError ?? NaN,
      seconds: (performance.now() - t0) / 1000,
      iterations: summary.iteration,
      rewritten: byz.reduce((a, b) => a + b.rewritten, 0),
      workerRows: rows,
      byzantineIds,
      resultsToBan: bannedAfter,
      overhead: summary.trust.overhead,
      steadyOverhead,
      jobId: id,
      summary,
    };
    await s.inspect?.(coord, id, byzantineIds);
    s.log?.(`${result.attack} ${result.byzantine}/${result.workers}: test error ${(100 * result.testError).toFixed(2)}% in ${result.seconds.toFixed(1)} s`);
    return result;
  } finally {
    await coord.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function waitDone(coord: Coordinator, id: string): Promise<void> {
  for (;;) {
    const st = coord.summary(id).state;
    if (st === 'done' || st === 'failed' || st === 'cancelled') return;
    await new Promise((r) => setTimeout(r, 50));
  }
}
