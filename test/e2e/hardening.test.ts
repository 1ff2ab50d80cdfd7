/**
 * Hardening (issue 10) with real coordinator processes (`node --import tsx
 * coordinator/server.ts`, `coordinator/cli/main.ts`):
 *
 * 1. the coordinator SIGKILLed after an update that ends a phase (or the
 *    job) but before its evaluation is stored (TESSERA_TEST_CRASH_AT makes it
 *    kill itself at that point) and restarted on the same folder: the
 *    restart evaluates what the crash interrupted, once, however often it
 *    restarts;
 * 6. restarted with the same `--job F --start` command (a supervisor), it
 *    resumes the job instead of creating another and dying on 409;
 * 10. operator mistakes (port taken, admin token too short, data folder
 *    unwritable, database or data set unreadable): one line naming the
 *    problem and the fix, a non-zero exit, nothing half-started.
 */
import Database from 'better-sqlite3';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseJobConfig, type JobConfig } from '../../core/model/config.ts';
import { phaseTensors, tensorShapes } from '../../core/model/params.ts';
import { encodeResult, PATHS, WORKER_HEADER, type LeaseResponse, type RegisterResponse, type TaskLease } from '../../core/protocol/index.ts';
import { ensureWebBuilt } from '../../coordinator/web/serve.ts';
import { MNIST_DIR, waitFor } from '../coordinator/harness.ts';

const REPO = resolve(import.meta.dirname, '../..');
const TOKEN = 'e2e-admin-token-0123456789';
const ADMIN = { Authorization: `Bearer ${TOKEN}` };

/**
 * 6 iterations: pre-training ends at iteration 2, fine-tuning (and the job) at 5.
 * The hand worker below uploads zero gradients, which verification by
 * recomputation (coordinator/trust/) would discard: it is off here.
 */
const TINY_JOB: JobConfig = parseJobConfig({
  name: 'tiny',
  verification: 'off',
  layers: [784, 16, 10],
  trainLimit: 300,
  testLimit: 100,
  partitions: 1,
  seed: 5,
  pretrain: { epochs: 1, batchSize: 100 },
  finetune: { epochs: 1, batchSize: 100 },
  checkpointEvery: 100,
});

const children: ChildProcess[] = [];
const dirs: string[] = [];
const servers: Server[] = [];

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'tessera-harden-e2e-'));
  dirs.push(d);
  return d;
}

afterEach(async () => {
  for (const p of children.splice(0)) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

beforeAll(() => {
  // server.ts and main.ts build the web pages when they are missing; do it once, before the clocks start
  ensureWebBuilt(() => undefined);
}, 300_000);

interface Proc {
  readonly p: ChildProcess;
  readonly out: () => string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** A process of this repository's TypeScript, in one process (`node --import tsx`), its stdout and stderr collected. */
function run(script: string, args: string[], env: Record<string, string> = {}): Proc {
  const p = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: REPO,
    env: { ...process.env, TESSERA_MNIST_DIR: MNIST_DIR, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(p);
  let text = '';
  p.stdout!.on('data', (b: Buffer) => (text += b.toString()));
  p.stderr!.on('data', (b: Buffer) => (text += b.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => p.once('exit', (code, signal) => r({ code, signal })));
  return { p, out: () => text, exited };
}

function freePort(): number {
  return 20_000 + Math.floor(Math.random() * 10_000); // below Linux's ephemeral range
}

function coordinator(port: number, data: string, extra: string[] = [], env: Record<string, string> = {}): Proc {
  return run('coordinator/server.ts', ['--port', String(port), '--data', data, '--admin-token', TOKEN, '--heartbeat-ms', '500', ...extra], env);
}

async function get<T>(url: string): Promise<T | null> {
  try {
    const res = await fetch(url, { headers: ADMIN });
    return res.ok ? ((await res.json()) as T) : null;
  } catch {
    return null;
  }
}

/** Waits until the coordinator answers; fails at once when its process has exited. */
async function up(url: string, proc: Proc): Promise<void> {
  await waitFor(async () => {
    if (proc.p.exitCode !== null || proc.p.signalCode !== null) throw new Error(`the coordinator exited (${proc.p.exitCode ?? proc.p.signalCode}):\n${proc.out()}`);
    return (await get(`${url}/api/v1/status`)) !== null;
  }, 30_000, `the coordinator at ${url}`);
}

/** Resolves to the promise's value, or to 'pending' when it has not settled within ms. */
async function within<T>(p: Promise<T>, ms: number): Promise<T | 'pending'> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<'pending'>((r) => (timer = setTimeout(() => r('pending'), ms)));
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** A worker speaking the protocol by hand: it answers every task of an iteration with one zero result. */
class HandWorker {
  private reg: RegisterResponse | null = null;
  constructor(private readonly url: string) {}

  private async post(path: string, body: unknown): Promise<Response> {
    return await fetch(this.url + path, { method: 'POST', headers: this.reg ? { [WORKER_HEADER]: this.reg.token } : {}, body: JSON.stringify(body) });
  }

  /** One iteration; false when there was nothing to lease or the coordinator is gone. */
  async iteration(): Promise<boolean> {
    try {
      this.reg ??= (await (await this.post(PATHS.register, { name: 'hand', runtime: 'node', backend: 'cpu', adapter: '' })).json()) as RegisterResponse;
      const r = (await (await this.post(PATHS.lease, { waitMs: 2_000, maxTasks: 64 })).json()) as LeaseResponse;
      if (!r.lease) return false;
      const ls: TaskLease[] = [r.lease, ...(r.more ?? [])];
      const l = ls[0]!;
      const shapes = tensorShapes(l.config);
      const grads = new Map(phaseTensors(l.config, l.phase).map((n) => [n, new Float32Array(shapes.get(n)!.reduce((x, y) => x * y, 1))]));
      const count = ls.reduce((n, x) => n + x.sample.count, 0);
      const body = encodeResult({ taskId: l.taskId, leaseId: l.leaseId, weightsVersion: l.weights.version, count, loss: count, correct: 0, ...(ls.length > 1 ? { bundle: ls.slice(1).map((x) => x.leaseId) } : {}) }, grads, shapes);
      const res = await fetch(this.url + PATHS.result(l.leaseId), { method: 'PUT', headers: { [WORKER_HEADER]: this.reg.token, 'content-type': 'application/vnd.safetensors' }, body: body as Uint8Array<ArrayBuffer> });
      return res.ok;
    } catch {
      return false;
    }
  }
}

interface JobView {
  id: string;
  state: string;
  iteration: number;
  totalIterations: number;
  lastEvaluation: { iteration: number } | null;
}

describe('a crash between an update and its evaluation (item 1)', () => {
  for (const [what, crashAt] of [['the final update', 5], ['a phase-ending update', 2]] as const) {
    it(`SIGKILLed after ${what}, restarted: the restart evaluates what the crash interrupted, once`, async () => {
      const dir = tmp();
      const data = join(dir, 'data');
      const port = freePort();
      const url = `http://127.0.0.1:${port}`;
      const first = coordinator(port, data, [], { TESSERA_TEST_CRASH_AT: `before-evaluation:${crashAt}` });
      await up(url, first);
      const created = await fetch(`${url}${PATHS.admin.jobs}`, { method: 'POST', headers: ADMIN, body: JSON.stringify(TINY_JOB) });
      expect(created.status).toBe(201);
      const { id } = (await created.json()) as { id: string };
      expect((await fetch(`${url}${PATHS.admin.jobs}/${id}/start`, { method: 'POST', headers: ADMIN })).status).toBe(200);
      const w = new HandWorker(url);
      for (let i = 0; i < 10 && first.p.exitCode === null && first.p.signalCode === null; i++) if (!(await w.iteration())) break;
      expect(await within(first.exited, 15_000)).toEqual({ code: null, signal: 'SIGKILL' }); // the crash hook fired in the window

      const evaluated = async (): Promise<number[]> => {
        const m = await get<{ evaluations: { iteration: number }[] }>(`${url}${PATHS.admin.jobs}/${id}/metrics`);
        return m ? m.evaluations.map((e) => e.iteration) : [];
      };
      const second = coordinator(port, data);
      await up(url, second);
      const w2 = new HandWorker(url);
      await waitFor(async () => {
        const j = await get<JobView>(`${url}${PATHS.admin.jobs}/${id}`);
        if (j?.state === 'running') await w2.iteration();
        return j?.state === 'done';
      }, 60_000, 'the job to be done');
      await waitFor(async () => (await evaluated()).length >= 2, 10_000, 'the evaluations');
      expect(await evaluated()).toEqual([2, 5]);
      const j = (await get<JobView>(`${url}${PATHS.admin.jobs}/${id}`))!;
      expect(j.lastEvaluation?.iteration).toBe(5);
      // Idempotent: another restart evaluates nothing again.
      second.p.kill('SIGKILL');
      await second.exited;
      const third = coordinator(port, data);
      await up(url, third);
      await new Promise((r) => setTimeout(r, 1_000));
      expect(await evaluated()).toEqual([2, 5]);
      expect((await get<JobView>(`${url}${PATHS.admin.jobs}/${id}`))!.state).toBe('done');
      third.p.kill('SIGTERM');
      await third.exited;
    }, 120_000);
  }
});

function jobsOnDisk(data: string): { id: string; state: string }[] {
  const db = new Database(join(data, 'state.sqlite'), { readonly: true });
  try {
    return db.prepare('SELECT id, state FROM jobs ORDER BY created_at').all() as { id: string; state: string }[];
  } finally {
    db.close();
  }
}

describe('restarting with the same command (item 6)', () => {
  it('server.ts --job F --start killed and started again with the same command resumes the job and creates no other', async () => {
    const dir = tmp();
    const data = join(dir, 'data');
    const jobFile = join(dir, 'job.json');
    writeFileSync(jobFile, JSON.stringify(TINY_JOB));
    const port = freePort();
    const url = `http://127.0.0.1:${port}`;
    const command = ['--job', jobFile, '--start'];
    const first = coordinator(port, data, command);
    await up(url, first);
    await waitFor(async () => (await get<PublicJob>(`${url}/api/v1/status`))?.job?.state === 'running', 30_000, 'the job to run');
    const w = new HandWorker(url);
    expect(await w.iteration()).toBe(true);
    first.p.kill('SIGKILL');
    await first.exited;
    const [job] = jobsOnDisk(data);
    for (let restart = 0; restart < 2; restart++) {
      const again = coordinator(port, data, command);
      await up(url, again);
      // give it the time to create (and, before the fix, to die on its 409)
      await waitFor(async () => again.p.exitCode !== null || jobsOnDisk(data).length > 1 || /resum/i.test(again.out()), 20_000, 'the restart to settle');
      await new Promise((r) => setTimeout(r, 500));
      expect(again.p.exitCode, again.out()).toBeNull();
      expect(jobsOnDisk(data)).toEqual([{ id: job!.id, state: 'running' }]);
      expect((await get<PublicJob>(`${url}/api/v1/status`))?.job?.id).toBe(job!.id);
      again.p.kill('SIGKILL');
      await again.exited;
    }
  }, 120_000);
});

interface PublicJob {
  job: { id: string; state: string } | null;
}

/** An operator mistake: a non-zero exit, soon, with one line that says `says` and no stack trace. */
async function expectOneLineRefusal(proc: Proc, says: RegExp): Promise<string> {
  const { code, signal } = await proc.exited;
  const out = proc.out();
  expect(signal, out).toBeNull();
  expect(code, out).not.toBe(0);
  expect(out, out).not.toMatch(/^\s+at /m);
  const lines = out.split('\n').filter((l) => says.test(l));
  expect(lines.length, out).toBe(1);
  return lines[0]!;
}

function processesMentioning(s: string): number[] {
  const pids: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, 'latin1').includes(s)) pids.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

describe('operator mistakes end in one line, not a stack trace (item 10)', () => {
  async function taken(): Promise<number> {
    const s = createServer();
    servers.push(s);
    return await new Promise((ok) => s.listen(0, '127.0.0.1', () => ok((s.address() as { port: number }).port)));
  }

  it('npm start on a port that is taken: names the port and --port, exits non-zero, leaves no local worker running', async () => {
    const port = await taken();
    const data = join(tmp(), 'data');
    const proc = run('coordinator/cli/main.ts', ['--port', String(port), '--data', data, '--workers', '1', '--backend', 'cpu', '--admin-token', TOKEN]);
    const line = await expectOneLineRefusal(proc, /in use/);
    expect(line).toContain(`port ${port} is in use`);
    expect(line).toMatch(/--port/);
    await new Promise((r) => setTimeout(r, 500));
    expect(processesMentioning(data)).toEqual([]);
  }, 60_000);

  it('server.ts on a port that is taken', async () => {
    const port = await taken();
    const line = await expectOneLineRefusal(coordinator(port, join(tmp(), 'data')), /in use/);
    expect(line).toContain(`port ${port} is in use`);
  }, 60_000);

  it('an admin token shorter than 16 characters: refused before anything is opened', async () => {
    for (const [script, extra] of [['coordinator/server.ts', []], ['coordinator/cli/main.ts', ['--workers', '0']]] as const) {
      const data = join(tmp(), 'data');
      const proc = run(script, ['--port', String(freePort()), '--data', data, ...extra, '--admin-token', 'short']);
      const line = await expectOneLineRefusal(proc, /admin token/);
      expect(line).toMatch(/16 characters/);
      expect(line).toMatch(/--admin-token/);
      expect(existsSync(join(data, 'state.sqlite'))).toBe(false);
    }
  }, 60_000);

  it('a data folder that cannot be written', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'a-file'), 'not a folder');
    const data = join(dir, 'a-file', 'data');
    const line = await expectOneLineRefusal(coordinator(freePort(), data), /data folder/);
    expect(line).toContain(data);
    expect(line).toMatch(/--data/);
  }, 60_000);

  it('a database that cannot be read', async () => {
    const dir = tmp();
    const data = join(dir, 'data');
    const first = coordinator(freePort(), data);
    await waitFor(() => /listening/.test(first.out()), 30_000, 'a first start');
    first.p.kill('SIGTERM');
    await first.exited;
    writeFileSync(join(data, 'state.sqlite'), Buffer.alloc(8192, 0x5a));
    rmSync(join(data, 'state.sqlite-wal'), { force: true });
    rmSync(join(data, 'state.sqlite-shm'), { force: true });
    const line = await expectOneLineRefusal(coordinator(freePort(), data), /state\.sqlite/);
    expect(line).toMatch(/cannot be read|not a database/);
  }, 60_000);

  it('a data set that cannot be read', async () => {
    const dir = tmp();
    const jobFile = join(dir, 'job.json');
    writeFileSync(jobFile, JSON.stringify(TINY_JOB));
    const missing = join(dir, 'no-mnist-here');
    const proc = coordinator(freePort(), join(dir, 'data'), ['--job', jobFile, '--start'], { TESSERA_MNIST_DIR: missing });
    const line = await expectOneLineRefusal(proc, /no-mnist-here/);
    expect(line).toMatch(/TESSERA_MNIST_DIR/);
  }, 60_000);
});
