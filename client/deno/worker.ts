/**
 * The headless Deno worker:
 *
 *   deno run -A client/deno/worker.ts --coordinator http://localhost:8080 \
 *     [--backend auto|webgpu|cpu] [--threads N] [--cache DIR] [--name NAME] [--throttle 0..1] \
 *     [--tasks-per-lease N] [--max-tasks N] [--exit-when-done] [--quiet] [--delay-upload-ms N] [--trace]
 *
 * --tasks-per-lease N takes up to N tasks of an iteration at a time (the
 * coordinator grants at most this worker's share of what is pending),
 * computes them in turn and uploads one summed result: one gradient per
 * iteration instead of one per task when workers are fewer than partitions.
 * --max-tasks N stops after N accepted tasks.
 * --threads N runs the CPU backend's kernels on N threads (default: the
 * machine's cores, navigator.hardwareConcurrency; 1 is the one-thread engine).
 * --throttle rests between tasks as before: all N threads compute, then all rest.
 * --delay-upload-ms holds every result back that long before uploading: a
 * slow link, for the fault tests.
 *
 * Uses WebGPU on a real GPU (auto), the CPU backend otherwise;
 * caches partition blobs on disk by hash; on SIGINT/SIGTERM gives its lease
 * back, leaves the grid and exits 0.
 */
import { createCpuBackend } from '../../core/cpu/index.ts';
import { FlagError } from '../../core/flags.ts';
import { pickBackend } from '../../core/pick-backend.ts';
import { GridWorker, MemoryBlobCache } from '../worker/worker.ts';
import { DiskBlobCache } from './disk-cache.ts';
import { parseWorkerFlags, WORKER_USAGE, type WorkerFlags } from './flags.ts';

async function main(): Promise<void> {
  let args: WorkerFlags;
  try {
    args = parseWorkerFlags(Deno.args);
  } catch (e) {
    if (!(e instanceof FlagError)) throw e;
    console.error(`${e.message} (--help lists the flags)`);
    Deno.exit(2);
  }
  if (args.help) {
    console.log(WORKER_USAGE);
    return;
  }
  const coordinator = args.coordinator;
  const log = (s: string): void => {
    if (!args.quiet) console.error(`[worker ${Deno.pid}] ${s}`);
  };
  const picked = await pickBackend(args.backend, {
    gpu: navigator.gpu,
    createCpu: () => createCpuBackend({ threads: args.threads }),
    createWebGpu: async (adapter) => (await import('../../core/webgpu/index.ts')).createWebGpuBackend({ adapter }),
    forceHint: '--backend webgpu forces WebGPU',
  }).catch((e: unknown) => {
    console.error((e as Error).message);
    return Deno.exit(1);
  });
  const { backend, fallbackReason } = picked;
  if (fallbackReason) log(`${fallbackReason}; using the CPU backend`);
  log(`backend ${backend.kind}: ${backend.adapter}`);
  const cache = args.cache ? new DiskBlobCache(args.cache) : new MemoryBlobCache();
  let lastReport = 0;
  const trace = args.trace;
  const delay = args.delayUploadMs;
  let leaseAt = 0;
  const worker = new GridWorker({
    coordinator,
    backend,
    cache,
    name: args.name ?? `deno-${Deno.hostname()}-${Deno.pid}`,
    runtime: 'deno',
    throttle: args.throttle,
    maxTasks: args.maxTasks,
    tasksPerLease: args.tasksPerLease,
    exitWhenDone: args.exitWhenDone,
    beforeUpload: delay === undefined ? undefined : () => new Promise((r) => setTimeout(r, delay)),
    onEvent: (e) => {
      switch (e.type) {
        case 'registered':
          log(`registered as ${e.workerId} with ${coordinator}`);
          break;
        case 'task':
          leaseAt = performance.now();
          break;
        case 'done': {
          if (trace) {
            const t = e.timing;
            console.error(`[trace] ${e.taskId}${e.tasks > 1 ? ` (+${e.tasks - 1} more)` : ''} fetch ${t.fetch.toFixed(1)} compute ${t.compute.toFixed(1)} encode ${t.encode.toFixed(1)} upload ${t.upload.toFixed(1)} ms; since lease ${(performance.now() - leaseAt).toFixed(1)} ms`);
          }
          const now = Date.now();
          if (now - lastReport > 2000) {
            lastReport = now;
            const s = e.stats;
            log(`${s.tasksDone} tasks, ${s.examplesDone} examples, ${s.examplesPerSecond.toFixed(0)} examples/s, ${(s.bytesDown / 1e6).toFixed(1)} MB down, ${(s.bytesUp / 1e6).toFixed(1)} MB up; iteration ${e.ack.iteration}`);
          }
          break;
        }
        case 'rejected':
          log(`task ${e.taskId} refused: ${e.status} ${e.error.error}: ${e.error.detail}`);
          break;
        case 'offline':
          log(`coordinator unreachable or busy (${e.message}); retrying in ${e.retryInMs} ms`);
          break;
        case 'idle':
          if (e.reason === 'done') log('the job is done');
          break;
        default:
          break;
      }
    },
  });
  let signalled = false;
  const onSignal = (): void => {
    if (signalled) Deno.exit(130);
    signalled = true;
    log('stopping: returning the lease and leaving');
    void worker.stop();
  };
  Deno.addSignalListener('SIGINT', onSignal);
  if (Deno.build.os !== 'windows') Deno.addSignalListener('SIGTERM', onSignal);
  await worker.start();
  backend.dispose();
  log('stopped');
  Deno.exit(0);
}

await main();
