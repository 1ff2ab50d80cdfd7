/**
 * The headless Deno worker:
 *
 *   deno run -A client/deno/worker.ts --coordinator http://localhost:8080 \
 *     [--backend auto|webgpu|cpu] [--cache DIR] [--name NAME] [--throttle 0..1] \
 *     [--tasks-per-lease N] [--max-tasks N] [--exit-when-done] [--quiet] [--delay-upload-ms N] [--trace]
 *
 * --tasks-per-lease N takes up to N tasks of an iteration at a time (the
 * coordinator grants at most this worker's share of what is pending),
 * computes them in turn and uploads one summed result: one gradient per
 * iteration instead of one per task when workers are fewer than partitions.
 * --max-tasks N stops after N accepted tasks.
 * --delay-upload-ms holds every result back that long before uploading: a
 * slow link, for the fault tests.
 *
 * Uses WebGPU on a real GPU (auto), the CPU backend otherwise;
 * caches partition blobs on disk by hash; on SIGINT/SIGTERM gives its lease
 * back, leaves the grid and exits 0.
 */
import type { ComputeBackend } from '../../core/backend.ts';
import { createCpuBackend } from '../../core/cpu/index.ts';
import { GridWorker, MemoryBlobCache, type BlobCache } from '../worker/worker.ts';

declare const Deno: {
  args: string[];
  exit(code: number): never;
  hostname(): string;
  pid: number;
  addSignalListener(sig: 'SIGINT' | 'SIGTERM', fn: () => void): void;
  readFile(path: string): Promise<Uint8Array>;
  writeFile(path: string, data: Uint8Array): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  mkdir(path: string, opts: { recursive: boolean }): Promise<void>;
  readDir(path: string): AsyncIterable<{ name: string; isFile: boolean }>;
  stat(path: string): Promise<{ size: number }>;
  remove(path: string): Promise<void>;
  build: { os: string };
};

const USAGE = `usage: deno run -A client/deno/worker.ts --coordinator URL [--backend auto|webgpu|cpu] [--cache DIR] [--name NAME]
       [--throttle 0..1] [--tasks-per-lease N] [--max-tasks N] [--exit-when-done] [--quiet] [--delay-upload-ms N] [--trace]`;

function parseArgs(argv: string[]): Record<string, string | true> {
  const out: Record<string, string | true> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${JSON.stringify(a)}\n${USAGE}`);
    const eq = a.indexOf('=');
    if (eq > 0) out[a.slice(2, eq)] = a.slice(eq + 1);
    else if (i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) out[a.slice(2)] = argv[++i]!;
    else out[a.slice(2)] = true;
  }
  return out;
}

/** Partitions on disk as DIR/<sha256>. */
class DiskBlobCache implements BlobCache {
  private known: Set<string> | null = null;

  constructor(private readonly dir: string) {}

  private async index(): Promise<Set<string>> {
    if (this.known) return this.known;
    await Deno.mkdir(this.dir, { recursive: true });
    const known = new Set<string>();
    for await (const e of Deno.readDir(this.dir)) if (e.isFile && /^[0-9a-f]{64}$/.test(e.name)) known.add(e.name);
    this.known = known;
    return known;
  }

  async get(hash: string): Promise<Uint8Array | undefined> {
    if (!(await this.index()).has(hash)) return undefined;
    try {
      return await Deno.readFile(`${this.dir}/${hash}`);
    } catch {
      this.known!.delete(hash);
      return undefined;
    }
  }

  async put(hash: string, bytes: Uint8Array): Promise<void> {
    const known = await this.index();
    if (known.has(hash)) return;
    const tmp = `${this.dir}/.${hash}.${Deno.pid}.tmp`;
    await Deno.writeFile(tmp, bytes);
    await Deno.rename(tmp, `${this.dir}/${hash}`);
    known.add(hash);
  }

  async delete(hash: string): Promise<void> {
    (await this.index()).delete(hash);
    await Deno.remove(`${this.dir}/${hash}`).catch(() => undefined);
  }

  async partitions(): Promise<string[]> {
    return [...(await this.index())];
  }
}

/**
 * `auto` takes WebGPU on a real GPU and the CPU backend otherwise: a software
 * adapter (lavapipe, SwiftShader; `isFallbackAdapter`) runs our kernels 4-6x
 * slower than the CPU backend's WebAssembly SIMD (bench/README.md).
 */
async function makeBackend(kind: string, log: (s: string) => void): Promise<ComputeBackend> {
  if (kind === 'cpu') return createCpuBackend();
  try {
    let adapter: GPUAdapter | null | undefined;
    if (kind === 'auto') {
      adapter = await navigator.gpu?.requestAdapter({ powerPreference: 'high-performance' });
      if (adapter?.info.isFallbackAdapter) {
        log(`WebGPU adapter "${adapter.info.description || adapter.info.vendor}" is a software fallback; using the CPU backend (--backend webgpu forces WebGPU)`);
        return createCpuBackend();
      }
    }
    const { createWebGpuBackend } = await import('../../core/webgpu/index.ts');
    return await createWebGpuBackend(adapter ? { adapter } : {});
  } catch (e) {
    if (kind === 'webgpu') throw e;
    log(`no WebGPU (${(e as Error).message.split('\n')[0]}); using the CPU backend`);
    return createCpuBackend();
  }
}

async function main(): Promise<void> {
  let args: Record<string, string | true>;
  try {
    args = parseArgs(Deno.args);
  } catch (e) {
    console.error((e as Error).message);
    Deno.exit(2);
  }
  if (args.help) {
    console.log(USAGE);
    return;
  }
  const coordinator = args.coordinator;
  if (typeof coordinator !== 'string') {
    console.error(`--coordinator URL is required\n${USAGE}`);
    Deno.exit(2);
  }
  const quiet = args.quiet === true;
  const log = (s: string): void => {
    if (!quiet) console.error(`[worker ${Deno.pid}] ${s}`);
  };
  const backendKind = typeof args.backend === 'string' ? args.backend : 'auto';
  if (!['auto', 'webgpu', 'cpu'].includes(backendKind)) {
    console.error(`--backend must be auto, webgpu or cpu, got ${backendKind}`);
    Deno.exit(2);
  }
  const backend = await makeBackend(backendKind, log);
  log(`backend ${backend.kind}: ${backend.adapter}`);
  const cache = typeof args.cache === 'string' ? new DiskBlobCache(args.cache) : new MemoryBlobCache();
  let lastReport = 0;
  const trace = args.trace === true;
  const perLease = typeof args['tasks-per-lease'] === 'string' ? Number(args['tasks-per-lease']) : 1;
  if (!Number.isInteger(perLease) || perLease < 1 || perLease > 64) {
    console.error(`--tasks-per-lease must be an integer from 1 to 64\n${USAGE}`);
    Deno.exit(2);
  }
  let leaseAt = 0;
  const worker = new GridWorker({
    coordinator,
    backend,
    cache,
    name: typeof args.name === 'string' ? args.name : `deno-${Deno.hostname()}-${Deno.pid}`,
    runtime: 'deno',
    throttle: typeof args.throttle === 'string' ? Number(args.throttle) : 1,
    maxTasks: typeof args['max-tasks'] === 'string' ? Number(args['max-tasks']) : undefined,
    tasksPerLease: perLease,
    exitWhenDone: args['exit-when-done'] === true,
    beforeUpload: typeof args['delay-upload-ms'] === 'string' ? () => new Promise((r) => setTimeout(r, Number(args['delay-upload-ms']))) : undefined,
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
