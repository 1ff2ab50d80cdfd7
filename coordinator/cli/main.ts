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
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DEFAULT_JOB } from '../../client/core/model/config.ts';
import { describeTraining } from '../../client/core/model/training.ts';
import { parseFlags, startServer } from '../server.ts';

const REPO = resolve(import.meta.dirname, '../..');

export function denoBinary(): string {
  const local = join(REPO, 'node_modules/.bin/deno');
  return existsSync(local) ? local : 'deno';
}

export function spawnDenoWorker(url: string, opts: { backend: string; cache?: string; name: string; extra?: string[] }): ChildProcess {
  const args = ['run', '-A', join(REPO, 'client/deno/worker.ts'), '--coordinator', url, '--backend', opts.backend, '--name', opts.name];
  if (opts.cache) args.push('--cache', opts.cache);
  args.push(...(opts.extra ?? []));
  return spawn(denoBinary(), args, { cwd: REPO, stdio: ['ignore', 'inherit', 'inherit'] });
}

const USAGE = `usage: npm start -- [options]
  --port N              HTTP port (default 8080)
  --host H              address to listen on (default 127.0.0.1; 0.0.0.0 for other machines)
  --data DIR            state, checkpoints and the worker cache (default .tessera); restart on it to resume
  --job FILE            a JSON job config (partial; the rest from DEFAULT_JOB) instead of the default MNIST DBN;
                        its "training" field picks the mode (sync | local-sgd) and the wire encodings, e.g.
                        bench/configs/spark-dbn-local-sgd.json
  --workers N           local Deno workers to start (default 1; 0 for none)
  --backend B           their backend: auto (WebGPU on a real GPU, else CPU), webgpu, cpu (default auto)
  --admin-token T       set the admin token (also TESSERA_ADMIN_TOKEN); else one is created at the first start
  --exit-when-done      stop everything when the job is done`;

async function main(): Promise<void> {
  const f = parseFlags(process.argv.slice(2));
  if (f.help || f.h) {
    console.log(USAGE);
    return;
  }
  const str = (k: string, d: string): string => (typeof f[k] === 'string' ? (f[k] as string) : d);
  const dataDir = resolve(str('data', '.tessera'));
  const nWorkers = Number(str('workers', '1'));
  const backend = str('backend', 'auto');
  (await import('../web/serve.ts')).ensureWebBuilt((l) => console.log(`[main] ${l}`)); // [web] build dist/web/ if missing
  const srv = await startServer({
    port: Number(str('port', '8080')),
    host: str('host', '127.0.0.1'),
    dataDir,
    adminToken: typeof f['admin-token'] === 'string' ? f['admin-token'] : undefined,
  });
  const { coord, url } = srv;
  let job = coord.jobs().find((j) => j.state === 'running' || j.state === 'paused');
  if (job) {
    console.log(`[main] resuming job ${job.id} (${job.name}) at iteration ${job.iteration} of ${job.totalIterations}`);
  } else {
    const cfg = typeof f.job === 'string' ? (JSON.parse(readFileSync(f.job, 'utf8')) as unknown) : DEFAULT_JOB;
    const created = await coord.createJob(cfg);
    job = await coord.action(created.id, 'start');
    console.log(`[main] started job ${job.id} (${job.name}, layers ${job.config.layers.join('-')}, ${describeTraining(job.config)}): ${job.totalIterations} ${job.config.training?.mode === 'local-sgd' ? 'rounds' : 'iterations'}`);
  }
  const jobId = job.id;
  console.log('');
  console.log(`  donate page:  ${url}/`);
  console.log(`  admin page:   ${url}/admin`);
  console.log(`  API:          ${url}/api/v1/status`);
  if (srv.createdAdminToken) console.log(`  admin token:  ${srv.createdAdminToken}   (shown once; stored hashed in ${dataDir})`);
  console.log(`  add a worker: deno run -A client/deno/worker.ts --coordinator ${url}`);
  console.log('');

  const workers: ChildProcess[] = [];
  for (let i = 0; i < nWorkers; i++) {
    // Several tasks per lease: one upload per iteration while local workers are fewer than partitions.
    workers.push(spawnDenoWorker(url, { backend, cache: join(dataDir, 'worker-cache'), name: `local-${i}`, extra: ['--tasks-per-lease', '8'] }));
  }

  let stopping = false;
  const stop = async (code: number): Promise<void> => {
    if (stopping) return;
    stopping = true;
    console.log('[main] stopping workers and the coordinator');
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
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));

  coord.events.subscribe((e) => {
    if (e.type === 'evaluation' && e.jobId === jobId) {
      console.log(`[main] ${e.phase} ended at iteration ${e.iteration}: test error ${(e.testError * 100).toFixed(2)}%`);
    }
    if (e.type === 'job' && e.jobId === jobId && e.state === 'done') {
      const s = coord.summary(jobId);
      console.log(`[main] job ${jobId} done: ${s.totalIterations} iterations, test error ${s.lastEvaluation ? (s.lastEvaluation.testError * 100).toFixed(2) + '%' : 'n/a'}`);
      if (f['exit-when-done']) void stop(0);
    }
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
