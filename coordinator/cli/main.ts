/**
 * The main job: the coordinator on the default MNIST DBN job (DEFAULT_JOB,
 * or --job FILE) with local Deno workers.
 *
 *   npm start -- [--port 8080] [--host 127.0.0.1] [--data .tessera] [--job config.json]
 *                [--workers 1] [--backend auto|webgpu|cpu] [--admin-token T] [--exit-when-done]
 *
 * Prints the donate and admin page URLs and the command that adds a worker.
 * Restarted on the same --data folder, it resumes the job from its last
 * checkpoint. Ctrl-C stops the workers (they return their leases) and the
 * coordinator.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DEFAULT_JOB } from '../../core/model/config.ts';
import type { JobSummary } from '../../core/protocol/index.ts';
import type { Coordinator } from '../engine/coordinator.ts';
import { jobFromFile } from '../job-file.ts';
import { datasetError } from '../operator-error.ts';
import { startServer } from '../server.ts';
import { JobLine } from './job-line.ts';
import { MAIN_USAGE, parseMainFlags } from './main-flags.ts';
import { readJobFile, runCli } from './run-cli.ts';

const REPO = resolve(import.meta.dirname, '../..');

export function denoBinary(): string {
  const local = join(REPO, 'node_modules/.bin/deno');
  return existsSync(local) ? local : 'deno';
}

/** Starts a Deno worker; its output goes to this process's, or line by line to `lines` when given. */
export function spawnDenoWorker(url: string, opts: { backend: string; cache?: string; name: string; extra?: string[]; lines?: (line: string) => void }): ChildProcess {
  const args = ['run', '-A', join(REPO, 'client/deno/worker.ts'), '--coordinator', url, '--backend', opts.backend, '--name', opts.name];
  if (opts.cache) args.push('--cache', opts.cache);
  args.push(...(opts.extra ?? []));
  const lines = opts.lines;
  const child = spawn(denoBinary(), args, { cwd: REPO, stdio: ['ignore', lines ? 'pipe' : 'inherit', lines ? 'pipe' : 'inherit'] });
  if (lines) {
    for (const stream of [child.stdout!, child.stderr!]) {
      let rest = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        const parts = (rest + chunk).split('\n');
        rest = parts.pop()!;
        for (const l of parts) lines(l);
      });
      stream.on('end', () => rest && lines(rest));
    }
  }
  return child;
}

/** The job npm start runs when none is active: --job FILE's, else DEFAULT_JOB, created and started. */
async function startMainJob(coord: Coordinator, file: { path: string; input: unknown } | null): Promise<JobSummary> {
  if (file) return await jobFromFile(coord, file.path, file.input, true, (s) => console.log(`[main] ${s}`));
  try {
    return await coord.action((await coord.createJob(DEFAULT_JOB)).id, 'start');
  } catch (e) {
    throw datasetError(e);
  }
}

async function main(): Promise<void> {
  const f = parseMainFlags(process.argv.slice(2));
  if (f.help) {
    console.log(MAIN_USAGE);
    return;
  }
  const dataDir = resolve(f.dataDir);
  const nWorkers = f.workers;
  const backend = f.backend;
  const jobFile = f.job === undefined ? undefined : readJobFile(f.job);
  // every line goes through `say`: above the job's live line once there is one
  let say = (text: string): void => console.log(text);
  (await import('../web/serve.ts')).ensureWebBuilt((l) => console.log(`[main] ${l}`)); // [web] build dist/web/ if missing
  const srv = await startServer({
    port: f.port,
    host: f.host,
    dataDir,
    adminToken: f.adminToken,
    log: (l) => say(`[coordinator] ${l}`),
  });
  const { coord, url } = srv;
  let job = coord.jobs().find((j) => j.state === 'running' || j.state === 'paused');
  if (job) {
    console.log(`[main] resuming job ${job.id} (${job.name}) at iteration ${job.iteration} of ${job.totalIterations}`);
  } else {
    try {
      job = await startMainJob(coord, f.job === undefined ? null : { path: f.job, input: jobFile });
    } catch (e) {
      await srv.close(); // nothing half-started: no worker runs yet
      throw e;
    }
    console.log(`[main] started job ${job.id} (${job.name}, layers ${job.config.layers.join('-')}): ${job.totalIterations} iterations`);
  }
  const jobId = job.id;
  console.log('');
  console.log(`  donate page:  ${url}/`);
  console.log(`  admin page:   ${url}/admin`);
  console.log(`  API:          ${url}/api/v1/status`);
  if (srv.createdAdminToken) console.log(`  admin token:  ${srv.createdAdminToken}   (shown once; stored hashed in ${dataDir})`);
  console.log(`  add a worker: deno run -A client/deno/worker.ts --coordinator ${url}`);
  console.log('');

  // One live line for the job (phase, iteration of total, examples/s, last test error, ETA); every other line prints above it.
  const live = new JobLine(job.name, job.totalIterations, job.iteration);
  say = (text) => live.log(text);
  const workers: ChildProcess[] = [];
  for (let i = 0; i < nWorkers; i++) {
    // Several tasks per lease: one upload per iteration while local workers are fewer than partitions.
    workers.push(spawnDenoWorker(url, { backend, cache: join(dataDir, 'worker-cache'), name: `local-${i}`, extra: ['--tasks-per-lease', '8'], lines: say }));
  }

  let stopping = false;
  const stop = async (code: number): Promise<void> => {
    if (stopping) return;
    stopping = true;
    say('[main] stopping workers and the coordinator');
    await Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((r) => {
            if (w.exitCode !== null) return r();
            w.once('exit', () => r());
            w.kill('SIGTERM');
            setTimeout(() => {
              w.kill('SIGKILL');
              r();
            }, 5000).unref();
          }),
      ),
    );
    await srv.close();
    live.finish();
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));

  coord.events.subscribe((e) => {
    if (e.type === 'iteration' && e.jobId === jobId) live.iterationDone(e.metrics);
    if (e.type === 'evaluation' && e.jobId === jobId) {
      const untrained = e.phase.startsWith('pretrain') ? ' (the output layer is not trained until fine-tuning)' : '';
      say(`[main] ${e.phase} ended at iteration ${e.iteration}: test error ${(e.testError * 100).toFixed(2)}%${untrained}`);
      live.evaluated(e.phase, e.testError);
    }
    if (e.type === 'job' && e.jobId === jobId && e.state === 'done') {
      const s = coord.summary(jobId);
      live.finish();
      console.log(`[main] job ${jobId} done: ${s.totalIterations} iterations, test error ${s.lastEvaluation ? (s.lastEvaluation.testError * 100).toFixed(2) + '%' : 'n/a'}`);
      if (f.exitWhenDone) void stop(0);
    }
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) runCli(main);
