/**
 * Coordinator load: simulated workers (separate processes, no compute) send
 * precomputed 6.7 MB results of the 784-500-500-2000-10 network over
 * loopback. Prints, for 8, 64 and 256 workers: iterations/s, p50/p99 lease
 * latency, results/s, aggregation throughput (GB/s of gradient summed,
 * timed inside the aggregator) beside a plain memory-copy rate and a plain
 * a += b rate measured in the same process, and errors.
 *
 *   nice npx tsx bench/coordinator-load.ts [--workers 8,64,256] [--seconds 20] [--procs 4] [--aggregator tree|flat]
 *
 * One task per worker per iteration (partitions = workers); every example of
 * a partition is in every iteration (batchSize = trainLimit), so each result
 * counts its partition's examples.
 */
import { spawn } from 'node:child_process';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseJobConfig } from '../core/model/config.ts';
import { parseFlags, startServer } from '../coordinator/server.ts';

const f = parseFlags(process.argv.slice(2));
const counts = (typeof f.workers === 'string' ? f.workers : '8,64,256').split(',').map(Number);
const seconds = Number(typeof f.seconds === 'string' ? f.seconds : 20);
const procs = Number(typeof f.procs === 'string' ? f.procs : 4);
const aggregator = f.aggregator === 'flat' ? 'flat' : 'tree';
const MNIST = resolve(import.meta.dirname, '../../shared/datasets/mnist');
const REPO = resolve(import.meta.dirname, '..');

/**
 * Reference rates on 6.7 MB tensors, reading from 8 different sources in turn
 * (53 MB, more than the caches hold, as results arriving from the network
 * are): TypedArray.set (a memcpy) and the plain JavaScript a[i] += b[i] loop.
 */
function memRates(): { copy: number; add: number } {
  const n = 1_662_000 + 3_010;
  const a = new Float32Array(n).fill(1);
  const srcs = Array.from({ length: 8 }, (_, k) => new Float32Array(n).fill(k));
  for (let w = 0; w < 8; w++) a.set(srcs[w]!);
  const reps = 48;
  let t0 = performance.now();
  for (let r = 0; r < reps; r++) a.set(srcs[r % 8]!);
  const copy = (reps * n * 4) / ((performance.now() - t0) / 1000) / 1e9;
  t0 = performance.now();
  for (let r = 0; r < reps / 4; r++) {
    const b = srcs[r % 8]!;
    for (let i = 0; i < n; i++) a[i] += b[i]!;
  }
  const add = ((reps / 4) * n * 4) / ((performance.now() - t0) / 1000) / 1e9;
  return { copy, add };
}

function pct(xs: number[], p: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

console.log(`coordinator load: 784-500-500-2000-10 (6.7 MB per result), ${aggregator} aggregation, ${seconds} s per point, simulated workers in ${procs} processes`);
console.log('workers  iter/s  results/s  lease p50 ms  lease p99 ms  agg GB/s  copy GB/s  a+=b GB/s  agg/copy  errors');
for (const workers of counts) {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-load-'));
  const srv = await startServer({ port: 0, dataDir: dir, adminToken: 'load-admin-token-0123456789', mnistDir: MNIST, pages: false, log: () => undefined, evalBackend: undefined, aggregator, fanIn: 8, leaseTimeoutMs: 120_000,
    // all simulated workers share one address: registration may not be limited per address here,
    // nor may their uploads wait on the per-address bound
    rateLimit: { perSecond: 10_000, burst: 10_000 },
    registrationLimit: { perAddress: { perSecond: 10_000, burst: 10_000 }, perNetwork: { perSecond: 10_000, burst: 10_000 } },
    uploadsPerAddress: 4 });
  const cfg = parseJobConfig({
    name: `load-${workers}`,
    layers: [784, 500, 500, 2000, 10],
    trainLimit: workers * 4,
    testLimit: 10,
    partitions: workers,
    seed: 1,
    pretrain: { epochs: 0 },
    finetune: { epochs: 10_000, batchSize: workers * 4 },
    checkpointEvery: 1_000_000,
  });
  const job = await srv.coord.createJob(cfg);
  await srv.coord.action(job.id, 'start');
  const perProc = Math.ceil(workers / Math.min(procs, workers));
  const nProcs = Math.ceil(workers / perProc);
  let iterations = 0;
  let measuring = false;
  srv.coord.events.subscribe((e) => {
    if (e.type === 'iteration' && measuring) iterations++;
  });
  const perf0 = { ...srv.coord.perf };
  const children = Array.from({ length: nProcs }, (_, i) => {
    const k = Math.min(perProc, workers - i * perProc);
    const p = spawn(process.execPath, ['--import', 'tsx', join(REPO, 'bench/coordinator-load-client.ts'), srv.url, String(k), String(seconds)], { cwd: REPO, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (b: Buffer) => (out += b.toString()));
    return new Promise<{ leases: number; results: number; errors: number; errorSamples: string[]; latencies: number[] }>((ok) => p.on('exit', () => ok(JSON.parse(out || '{"leases":0,"results":0,"errors":1,"errorSamples":["no output"],"latencies":[]}'))));
  });
  // Skip the first seconds (process start, registration, first iteration).
  const warm = Math.min(3, seconds / 4);
  await new Promise((r) => setTimeout(r, warm * 1000));
  measuring = true;
  const lag = monitorEventLoopDelay({ resolution: 5 });
  lag.enable();
  const t0 = performance.now();
  const stats = await Promise.all(children);
  const elapsed = (performance.now() - t0) / 1000;
  measuring = false;
  lag.disable();
  const perf = srv.coord.perf;
  const aggGBs = (perf.aggregateBytes - perf0.aggregateBytes) / (perf.aggregateSeconds - perf0.aggregateSeconds) / 1e9;
  const lat = stats.flatMap((s) => s.latencies);
  const results = stats.reduce((a, s) => a + s.results, 0);
  const errors = stats.reduce((a, s) => a + s.errors, 0);
  const mem = memRates();
  console.log(
    `${String(workers).padStart(7)}  ${(iterations / elapsed).toFixed(2).padStart(6)}  ${(results / (elapsed + warm)).toFixed(1).padStart(9)}  ${pct(lat, 50).toFixed(2).padStart(12)}  ${pct(lat, 99).toFixed(2).padStart(12)}  ${aggGBs.toFixed(2).padStart(8)}  ${mem.copy.toFixed(2).padStart(9)}  ${mem.add.toFixed(2).padStart(9)}  ${(aggGBs / mem.copy).toFixed(2).padStart(8)}  ${errors}`,
  );
  const dr = perf.results - perf0.results;
  console.log(`         coordinator event-loop delay p50 ${(lag.percentile(50) / 1e6).toFixed(1)} ms, p99 ${(lag.percentile(99) / 1e6).toFixed(1)} ms (what any request waits before the coordinator runs it)`);
  console.log(`         coordinator per result: decode + validate ${((1000 * (perf.validateSeconds - perf0.validateSeconds)) / dr).toFixed(1)} ms, aggregate ${((1000 * (perf.aggregateSeconds - perf0.aggregateSeconds)) / dr).toFixed(1)} ms; update ${((1000 * (perf.updateSeconds - perf0.updateSeconds)) / Math.max(1, iterations)).toFixed(1)} ms per iteration`);
  for (const s of stats) for (const e of s.errorSamples) console.log(`    error: ${e}`);
  await srv.close();
  rmSync(dir, { recursive: true, force: true });
}
