/**
 * The seed network's whole schedule through the coordinator and one Deno
 * worker, timed to a test error (issue 16's goal: 1.96% on a real GPU, under
 * 125 s). For bench/gpu.sh on a machine with neither Node nor npm: the
 * coordinator and the worker run as the bundles `bench/gpu.sh --prepare`
 * makes (.carry/coordinator.mjs, with better-sqlite3 replaced by Deno's
 * node:sqlite through bench/gpu/sqlite-shim.cjs, and .carry/worker.mjs), both
 * under the Deno running this script.
 *
 *   deno run -A bench/gpu/schedule.ts [--job bench/configs/spark-dbn.json] [--target 0.0196]
 *       [--limit-s 240] [--every-s 2] [--backend webgpu] [--tasks-per-lease 6] [--carry .carry]
 *       [--mnist DIR] [--test-limit 0] [--out DIR]
 *
 * Every --every-s seconds it downloads the live weights (GET
 * /admin/jobs/:id/weights) and measures their test error on this process's
 * own webgpu backend (predict, the same GPU: about 33 GFLOP per evaluation of
 * the 10,000 test images, a fraction of a second on a real GPU, so the worker
 * loses little), and stops at the first snapshot at or under --target, at the
 * job's end, or at --limit-s. The time is from the job's start to that
 * snapshot's download (so it is late by up to --every-s plus one download).
 * Prints one line per evaluation and a summary; logs in --out. (Node's
 * APIs, which Deno provides, so that tsc checks it with the rest of bench/.)
 */
import { spawn as spawnProcess, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import process from 'node:process';
import { createWebGpuBackend } from '../../core/webgpu/index.ts';
import type { DenseLayer } from '../../core/backend.ts';
import { loadTestSet, parseWeights } from '../scaling/evaluate.ts';

const args = process.argv.slice(2);
const opt = (f: string, d: string): string => (args.includes(f) ? args[args.indexOf(f) + 1]! : d);
const job = opt('--job', 'bench/configs/spark-dbn.json');
const target = Number(opt('--target', '0.0196'));
const limitS = Number(opt('--limit-s', '240'));
const everyS = Number(opt('--every-s', '2'));
const backend = opt('--backend', 'webgpu');
const tasksPerLease = opt('--tasks-per-lease', '6');
const carry = opt('--carry', '.carry');
const mnist = opt('--mnist', process.env.TESSERA_MNIST_DIR ?? `${carry}/mnist`);
const testLimit = Number(opt('--test-limit', '0'));
const out = opt('--out', process.env.OUT ?? '/tmp/tessera-gpu-out');
const port = 18000 + Math.floor(Math.random() * 1000);
const base = `http://127.0.0.1:${port}`;
const token = Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
const data = mkdtempSync(join(tmpdir(), 'tessera-schedule-'));
mkdirSync(out, { recursive: true });

const env = { ...process.env, TESSERA_MNIST_DIR: mnist, DENO_NO_PACKAGE_JSON: '1' };
/** `deno run -A ...a` (process.execPath is the Deno running this), its output in out/schedule-NAME.log. */
const spawn = (name: string, a: string[]): ChildProcess => {
  const log = createWriteStream(join(out, `schedule-${name}.log`));
  const p = spawnProcess(process.execPath, ['run', '-A', ...a], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  p.stdout!.pipe(log);
  p.stderr!.pipe(log);
  return p;
};
const api = async (path: string, method = 'GET'): Promise<Response> => {
  const r = await fetch(`${base}/api/v1${path}`, { method, headers: { authorization: `Bearer ${token}` } });
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${await r.text()}`);
  return r;
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const test = loadTestSet(mnist, testLimit);
const gpu = await createWebGpuBackend();
console.log(`schedule: job ${job}, target ${(target * 100).toFixed(2)}%, worker backend ${backend}, evaluating on ${gpu.adapter}, ${test.count} test images`);
const x = new Float32Array(test.count * test.dim);
for (let i = 0; i < x.length; i++) x[i] = test.images[i]! / 255;

async function testError(blob: Uint8Array): Promise<number> {
  const w = parseWeights(blob);
  const layers: DenseLayer[] = [];
  for (let k = 0; w.has(`rbm${k}.W`); k++) {
    const W = w.get(`rbm${k}.W`)!;
    layers.push({ nIn: W.shape[0]!, nOut: W.shape[1]!, W: W.data, b: w.get(`rbm${k}.hbias`)!.data });
  }
  const W = w.get('out.W')!;
  layers.push({ nIn: W.shape[0]!, nOut: W.shape[1]!, W: W.data, b: w.get('out.b')!.data });
  const K = W.shape[1]!;
  let wrong = 0;
  const step = 2000;
  for (let lo = 0; lo < test.count; lo += step) {
    const B = Math.min(step, test.count - lo);
    const p = await gpu.predict(layers, x.subarray(lo * test.dim, (lo + B) * test.dim), B);
    for (let r = 0; r < B; r++) {
      let best = 0;
      for (let k = 1; k < K; k++) if (p[r * K + k]! > p[r * K + best]!) best = k;
      if (best !== test.labels[lo + r]) wrong++;
    }
  }
  return wrong / test.count;
}

const coordinator = spawn('coordinator', [`${carry}/coordinator.mjs`, '--port', String(port), '--data', data, '--job', job, '--admin-token', token]);
let worker: ChildProcess | null = null;
let result = 1;
try {
  let jobId = '';
  for (let i = 0; ; i++) {
    try {
      const { jobs } = (await (await api('/admin/jobs')).json()) as { jobs: { id: string }[] };
      if (jobs.length) {
        jobId = jobs[jobs.length - 1]!.id;
        break;
      }
    } catch {
      // not listening yet
    }
    if (i > 600) throw new Error(`the coordinator did not come up in 60 s (${out}/schedule-coordinator.log)`);
    await sleep(100);
  }
  worker = spawn('worker', [`${carry}/worker.mjs`, '--coordinator', base, '--backend', backend, '--threads', '1', '--tasks-per-lease', tasksPerLease, '--name', 'gpu-schedule']);
  for (let i = 0; ; i++) {
    const { workers } = (await (await api('/admin/workers')).json()) as { workers: { state: string }[] };
    if (workers.some((w) => w.state === 'active')) break;
    if (i > 600) throw new Error(`the worker did not register in 60 s (${out}/schedule-worker.log)`);
    await sleep(100);
  }
  const t0 = performance.now();
  await api(`/admin/jobs/${jobId}/start`, 'POST');
  let best = Infinity;
  for (;;) {
    await sleep(everyS * 1000);
    const t = (performance.now() - t0) / 1000;
    const blob = new Uint8Array(await (await api(`/admin/jobs/${jobId}/weights`)).arrayBuffer());
    const { state, iteration } = (await (await api(`/admin/jobs/${jobId}`)).json()) as { state: string; iteration?: number };
    const err = await testError(blob);
    best = Math.min(best, err);
    console.log(`  ${t.toFixed(1)} s: iteration ${iteration ?? '?'}, test error ${(err * 100).toFixed(2)}%`);
    if (err <= target) {
      console.log(`schedule: ${(target * 100).toFixed(2)}% reached at ${t.toFixed(1)} s (test error ${(err * 100).toFixed(2)}%; goal under 125 s, stretch 30 s)`);
      result = 0;
      break;
    }
    if (state === 'done' || state === 'failed' || t > limitS) {
      console.log(`schedule: ${(target * 100).toFixed(2)}% NOT reached: job ${state} after ${t.toFixed(1)} s, best test error ${(best * 100).toFixed(2)}%`);
      break;
    }
  }
} finally {
  for (const p of [worker, coordinator]) {
    try {
      p?.kill('SIGTERM');
    } catch {
      // already gone
    }
  }
  await sleep(500);
  gpu.dispose();
  rmSync(data, { recursive: true, force: true });
}
process.exit(result);
