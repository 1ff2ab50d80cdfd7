/**
 * The threaded WebAssembly SIMD engine: the kernels of assembly/simd.as.ts,
 * built over an imported shared memory (simd-shared-wasm.generated.ts), run
 * by the calling thread and `threads - 1` helpers (thread.ts) that all
 * instantiate the module on one shared WebAssembly.Memory. The workspace
 * lives in that memory, so no operand is copied: a job (one matmul, one
 * bias + sigmoid, ...) is written to a control block, the helpers wake on
 * it, every thread computes its rows (parallel.ts), and the caller returns
 * when all are done. The calling thread blocks in Atomics.wait meanwhile,
 * which a Web Worker, Deno and Node allow (a browser page's main thread does
 * not: createThreadedEngine refuses there).
 *
 * Needs SharedArrayBuffer, which browsers give only to cross-origin isolated
 * pages (COOP same-origin + COEP require-corp); where it is missing,
 * createThreadedEngine answers null and the caller keeps one thread.
 */
import type { CpuEngine, MatmulFn } from './cpu-backend.ts';
import { biasSigmoid, sampleBernoulli, sigmoidBackprop, type MatmulForm } from './kernels.ts';
import { CONTROL_BYTES, CTL, IDS_CAPACITY, OP, tagOf, work, type SharedKernels, type ThreadInit } from './parallel.ts';
import { SIMD_SHARED_WASM_BASE64 } from './simd-shared-wasm.generated.ts';
import { operandAddress } from './simd.ts';
import { WasmWorkspace } from './workspace.ts';

/** The end of a helper thread the engine talks to (a Web Worker, a worker_threads Worker). */
export interface ThreadEndpoint {
  postMessage(message: ThreadInit): void;
  /** calls `fn` with the helper's first message ('ready') or its start-up error */
  onReady(fn: (error: Error | null) => void): void;
  terminate(): void;
}

/** Starts helper `part` (1..threads-1) running thread.ts. */
export type ThreadSpawner = (part: number) => ThreadEndpoint;

/** Most threads an engine takes. */
export const MAX_THREADS = 64;
/** Below this many multiply-adds a matmul runs on the calling thread alone (waking helpers costs more). */
const MIN_PARALLEL_MACS = 1 << 16;
/** Below this many elements an elementwise kernel runs on the calling thread alone. */
const MIN_PARALLEL_ELEMENTS = 1 << 13;
/** Chunks per thread a job is cut into (threads claim them one at a time). */
const CHUNKS_PER_THREAD = 4;
/** A job that takes longer than this without finishing means a helper died. */
const STALL_MS = 120_000;

/** The shared-memory module's bytes. */
export function simdSharedWasmBytes(): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(atob(SIMD_SHARED_WASM_BASE64), (ch) => ch.charCodeAt(0));
}

/** Spawns thread.ts as a module Web Worker (browsers, Deno; Vite bundles it from this pattern). */
export const webSpawner: ThreadSpawner = (part) => {
  if (typeof Worker === 'undefined') {
    throw new Error('this runtime has no Web Worker: pass createCpuBackend a spawn function (Node: nodeSpawner from core/cpu/threads-node.ts)');
  }
  const w = new Worker(new URL('./thread.ts', import.meta.url), { type: 'module', name: `tessera-cpu-thread-${part}` });
  return {
    postMessage: (m) => w.postMessage(m),
    onReady: (fn) => {
      w.onmessage = () => fn(null);
      w.onerror = (e) => {
        e.preventDefault();
        fn(new Error(`CPU thread ${part} failed to start: ${e.message}`));
      };
    },
    terminate: () => w.terminate(),
  };
};

/**
 * Whether this context may share memory between threads and block on it:
 * SharedArrayBuffer exists (a browser page only when crossOriginIsolated) and
 * this is not a browser page's main thread (which may not Atomics.wait).
 */
export function canShareMemory(): boolean {
  if (typeof SharedArrayBuffer === 'undefined' || typeof Atomics === 'undefined') return false;
  const g = globalThis as { crossOriginIsolated?: boolean; document?: unknown };
  if (g.crossOriginIsolated === false) return false;
  return g.document === undefined;
}

export interface ThreadedEngineOptions {
  /** threads in all, the caller included: 2..MAX_THREADS */
  readonly threads: number;
  /** how to start a helper (default: a module Web Worker; in Node pass threads-node.ts's nodeSpawner) */
  readonly spawn?: ThreadSpawner;
  /**
   * Smallest jobs split across threads (default: matmuls of 2^16
   * multiply-adds, elementwise kernels of 2^13 elements); smaller ones run on
   * the calling thread. Tests set 0 to split every job.
   */
  readonly minParallel?: { readonly macs: number; readonly elements: number };
}

/** Checks a thread count: an integer from 1 to MAX_THREADS. */
export function checkThreads(threads: number): number {
  if (!Number.isInteger(threads) || threads < 1 || threads > MAX_THREADS) {
    throw new RangeError(`threads must be an integer from 1 to ${MAX_THREADS}, got ${threads}`);
  }
  return threads;
}

/** A shared memory as large as the module allows, or as the runtime will reserve. */
function sharedMemory(): WebAssembly.Memory {
  let error: unknown;
  for (const maximum of [65536, 16384, 4096]) {
    try {
      return new WebAssembly.Memory({ initial: 1, maximum, shared: true });
    } catch (e) {
      error = e;
    }
  }
  throw error;
}

/**
 * The engine on `threads` threads, or null where memory cannot be shared
 * (see canShareMemory) or the runtime has no WebAssembly SIMD. Call
 * `dispose()` to end the helpers.
 */
export async function createThreadedEngine(opts: ThreadedEngineOptions): Promise<CpuEngine | null> {
  const threads = checkThreads(opts.threads);
  if (threads < 2 || !canShareMemory() || typeof WebAssembly === 'undefined') return null;
  let module: WebAssembly.Module;
  let memory: WebAssembly.Memory;
  let wasm: SharedKernels;
  try {
    module = await WebAssembly.compile(simdSharedWasmBytes());
    memory = sharedMemory();
    wasm = (await WebAssembly.instantiate(module, { env: { memory } })).exports as unknown as SharedKernels;
  } catch {
    return null;
  }
  const control = new SharedArrayBuffer(CONTROL_BYTES);
  const ctl = new Int32Array(control);
  const ids = new Uint32Array(control, CONTROL_BYTES - 4 * IDS_CAPACITY, IDS_CAPACITY);
  const spawn = opts.spawn ?? webSpawner;
  const minMacs = opts.minParallel?.macs ?? MIN_PARALLEL_MACS;
  const minElements = opts.minParallel?.elements ?? MIN_PARALLEL_ELEMENTS;
  const helpers: ThreadEndpoint[] = [];
  const quit = (): void => {
    Atomics.store(ctl, CTL.QUIT, 1);
    Atomics.add(ctl, CTL.GEN, 1);
    Atomics.notify(ctl, CTL.GEN);
    for (const h of helpers) h.terminate();
    helpers.length = 0;
  };
  try {
    await Promise.all(
      Array.from({ length: threads - 1 }, (_, i) => {
        const h = spawn(i + 1);
        helpers.push(h);
        return new Promise<void>((resolve, reject) => {
          h.onReady((e) => (e ? reject(e) : resolve()));
          h.postMessage({ module, memory, control, part: i + 1 });
        });
      }),
    );
  } catch (e) {
    quit();
    throw e;
  }

  /**
   * Runs job `op` over `units` chunks' worth of rows (at most a few chunks
   * per thread): helpers wake and claim chunks, the caller claims them too,
   * then waits until every claimed chunk is done.
   */
  const run = (op: number, units: number, args: readonly number[]): void => {
    const chunks = Math.min(units, threads * CHUNKS_PER_THREAD);
    const gen = (ctl[CTL.GEN]! + 1) | 0;
    // Close claiming first (no tag matches -1), so a late helper of the last
    // job cannot claim a chunk of this one before its arguments are written.
    Atomics.store(ctl, CTL.NEXT, -1);
    ctl[CTL.OP] = op;
    ctl[CTL.CHUNKS] = chunks;
    ctl[CTL.ERROR] = 0;
    for (let i = 0; i < args.length; i++) ctl[CTL.ARG + i] = args[i]!;
    Atomics.store(ctl, CTL.DONE, 0);
    Atomics.store(ctl, CTL.NEXT, tagOf(gen));
    Atomics.store(ctl, CTL.GEN, gen);
    Atomics.notify(ctl, CTL.GEN);
    work(ctl, memory, wasm, gen);
    const start = Date.now();
    for (;;) {
      const done = Atomics.load(ctl, CTL.DONE);
      if (done === chunks) break;
      if (Atomics.wait(ctl, CTL.DONE, done, 1000) === 'timed-out' && Date.now() - start > STALL_MS) {
        throw new Error(`a CPU thread has not finished its chunk in ${STALL_MS / 1000} s; it may have died`);
      }
    }
    if (ctl[CTL.ERROR]) throw new Error('a CPU thread failed on its chunk of a kernel');
  };

  const inMemory = (a: { buffer: ArrayBufferLike }): boolean => a.buffer === memory.buffer;
  const addr = operandAddress(memory);
  const matmul: MatmulFn = (form: MatmulForm, A, B, C, M, K, N) => {
    const a = addr('A', A, M * K);
    const b = addr('B', B, K * N);
    const c = addr('C', C, M * N);
    const serial = M * K * N < minMacs || M < 2;
    if (form === 'nt') {
      if (!serial) run(OP.MATMUL_NT, Math.ceil(M / 2), [a, b, c, M, K, N]);
      else wasm.matmulNT(a, b, c, M, K, N);
    } else {
      const [sI, sK] = form === 'nn' ? [K, 1] : [1, M];
      if (!serial) run(OP.MATMUL_BROADCAST, Math.ceil(M / 4), [a, sI, sK, b, c, M, K, N]);
      else wasm.matmulBroadcast(a, sI, sK, b, c, M, K, N);
    }
  };
  /** Whether an M x N elementwise job over these arrays is split (else it runs here, with the plain kernel). */
  const split = (M: number, N: number, ...arrays: { buffer: ArrayBufferLike; length: number }[]): boolean =>
    M * N >= minElements && M >= 2 && arrays.every((a) => inMemory(a) && a.length >= M * N);

  return {
    name: `WebAssembly SIMD, ${threads} threads`,
    matmul,
    workspace: new WasmWorkspace(memory, wasm.heapBase()),
    kernels: {
      biasSigmoid(Z, bias, Y, M, N) {
        if (inMemory(bias) && bias.length >= N && split(M, N, Z, Y)) run(OP.BIAS_SIGMOID, M, [Z.byteOffset, bias.byteOffset, Y.byteOffset, M, N]);
        else biasSigmoid(Z, bias, Y, M, N);
      },
      sampleBernoulli(P, S, M, N, seed, iteration, exampleIds) {
        if (M <= IDS_CAPACITY && exampleIds.length >= M && split(M, N, P, S)) {
          ids.set(exampleIds.subarray(0, M));
          run(OP.SAMPLE_BERNOULLI, M, [P.byteOffset, S.byteOffset, M, N, seed | 0, iteration | 0]);
        } else sampleBernoulli(P, S, M, N, seed, iteration, exampleIds);
      },
      sigmoidBackprop(G, A, D, M, N) {
        if (split(M, N, G, A, D)) run(OP.SIGMOID_BACKPROP, M, [G.byteOffset, A.byteOffset, D.byteOffset, M, N]);
        else sigmoidBackprop(G, A, D, M, N);
      },
    },
    dispose: quit,
  };
}
