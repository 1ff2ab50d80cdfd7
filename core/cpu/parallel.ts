/**
 * What the threaded CPU engine's threads share: the layout of the control
 * block (an Int32Array over a SharedArrayBuffer) and `work`, which takes
 * chunks of rows of the current job and runs them on the shared WebAssembly
 * memory until none is left. The caller (threads.ts) and every helper
 * (thread.ts) run the same code on disjoint rows of the output, so a
 * threaded result is the one-thread result: each element is computed by the
 * same kernel with the same summation order.
 *
 * A job is cut into a few chunks per thread and threads claim them one at a
 * time, so a helper the OS has not scheduled (a busy machine) costs nothing:
 * the others take its chunks, and the caller waits only for chunks that were
 * claimed, never for a helper to wake.
 *
 * Shape legend as in kernels.ts: C is M x N, the sum runs over K; elementwise
 * kernels are M rows x N columns. Addresses are byte offsets in the memory.
 */
import { biasSigmoid, sampleBernoulli, sigmoidBackprop } from './kernels.ts';

/** The one message a helper thread (thread.ts) receives. */
export interface ThreadInit {
  readonly module: WebAssembly.Module;
  readonly memory: WebAssembly.Memory;
  readonly control: SharedArrayBuffer;
  /** this helper's number, 1..threads-1 (the caller is 0), for names and errors */
  readonly part: number;
}

/** Control block slots. */
export const CTL = {
  /** job counter: bumped once per job; helpers wait on it */
  GEN: 0,
  /** the next chunk to claim, tagged with the job: (GEN & 0x7fff) << 16 | chunk */
  NEXT: 1,
  /** chunks finished; the caller waits on it */
  DONE: 2,
  OP: 3,
  /** chunks the job is cut into */
  CHUNKS: 4,
  /** set to 1 by a thread whose chunk threw */
  ERROR: 5,
  /** 1: helpers end */
  QUIT: 6,
  /** the job's arguments, ARG..ARG+8 */
  ARG: 7,
} as const;

/** The tag of job `gen` in CTL.NEXT. */
export const tagOf = (gen: number): number => (gen & 0x7fff) << 16;

/** Bytes of the control slots; the example ids of a sampling job follow. */
export const CTL_BYTES = 64;
/** Example ids the control block holds; a larger sampling job runs on the caller alone. */
export const IDS_CAPACITY = 16384;
export const CONTROL_BYTES = CTL_BYTES + 4 * IDS_CAPACITY;

export const OP = {
  /** a, sI, sK, b, c, M, K, N: matmulBroadcast ('nn', 'tn') */
  MATMUL_BROADCAST: 2,
  /** a, b, c, M, K, N: matmulNT */
  MATMUL_NT: 3,
  /** Z, bias, Y, M, N */
  BIAS_SIGMOID: 4,
  /** P, S, M, N, seed, iteration; the ids in the control block */
  SAMPLE_BERNOULLI: 5,
  /** G, A, D, M, N */
  SIGMOID_BACKPROP: 6,
} as const;

/** The shared module's kernels (assembly/simd.as.ts). */
export interface SharedKernels {
  heapBase(): number;
  matmulBroadcast(a: number, sI: number, sK: number, b: number, c: number, M: number, K: number, N: number): void;
  matmulNT(a: number, b: number, c: number, M: number, K: number, N: number): void;
}

/** Rows [lo, hi) of `total` that part `p` of `parts` takes, cut at multiples of `align`. */
export function share(total: number, parts: number, p: number, align: number): [number, number] {
  const units = Math.ceil(total / align);
  const lo = Math.floor((units * p) / parts) * align;
  const hi = Math.min(total, Math.floor((units * (p + 1)) / parts) * align);
  return [Math.min(lo, total), hi];
}

/**
 * Claims and runs chunks of job `gen` until none is left (or the job is no
 * longer current); counts each finished chunk in CTL.DONE and wakes the
 * caller after the last. Returns the chunks this thread ran.
 */
export function work(ctl: Int32Array, memory: WebAssembly.Memory, wasm: SharedKernels, gen: number): number {
  const tag = tagOf(gen);
  let ran = 0;
  for (;;) {
    const next = Atomics.load(ctl, CTL.NEXT);
    if ((next & ~0xffff) !== tag) return ran; // a later job: its caller's thread and the others take it
    const chunk = next & 0xffff;
    const chunks = ctl[CTL.CHUNKS]!;
    if (chunk >= chunks) return ran;
    if (Atomics.compareExchange(ctl, CTL.NEXT, next, next + 1) !== next) continue;
    // Claimed: the job cannot finish (nor its arguments change) before this chunk is counted.
    try {
      runChunk(ctl, memory, wasm, chunk, chunks);
    } catch {
      Atomics.store(ctl, CTL.ERROR, 1);
    }
    ran++;
    if (Atomics.add(ctl, CTL.DONE, 1) + 1 === chunks) Atomics.notify(ctl, CTL.DONE);
  }
}

/** Runs chunk `c` of `chunks` of the job the control block describes. */
function runChunk(ctl: Int32Array, memory: WebAssembly.Memory, wasm: SharedKernels, p: number, parts: number): void {
  const op = ctl[CTL.OP]!;
  const arg = (i: number): number => ctl[CTL.ARG + i]!;
  const f32 = (addr: number, n: number): Float32Array => new Float32Array(memory.buffer, addr, n);
  switch (op) {
    case OP.MATMUL_BROADCAST: {
      const [a, sI, sK, b, c, M, K, N] = [arg(0), arg(1), arg(2), arg(3), arg(4), arg(5), arg(6), arg(7)];
      const [lo, hi] = share(M, parts, p, 4); // the kernel's 4-row tiles
      if (hi > lo) wasm.matmulBroadcast(a + lo * sI * 4, sI, sK, b, c + lo * N * 4, hi - lo, K, N);
      return;
    }
    case OP.MATMUL_NT: {
      const [a, b, c, M, K, N] = [arg(0), arg(1), arg(2), arg(3), arg(4), arg(5)];
      const [lo, hi] = share(M, parts, p, 2); // the kernel's 2-row tiles
      if (hi > lo) wasm.matmulNT(a + lo * K * 4, b, c + lo * N * 4, hi - lo, K, N);
      return;
    }
    case OP.BIAS_SIGMOID: {
      const [Z, bias, Y, M, N] = [arg(0), arg(1), arg(2), arg(3), arg(4)];
      const [lo, hi] = share(M, parts, p, 1);
      const m = hi - lo;
      if (m > 0) biasSigmoid(f32(Z + lo * N * 4, m * N), f32(bias, N), f32(Y + lo * N * 4, m * N), m, N);
      return;
    }
    case OP.SAMPLE_BERNOULLI: {
      const [P, S, M, N, seed, iteration] = [arg(0), arg(1), arg(2), arg(3), arg(4) >>> 0, arg(5) >>> 0];
      const [lo, hi] = share(M, parts, p, 1);
      const m = hi - lo;
      const ids = new Uint32Array(ctl.buffer, CTL_BYTES + lo * 4, m);
      if (m > 0) sampleBernoulli(f32(P + lo * N * 4, m * N), f32(S + lo * N * 4, m * N), m, N, seed, iteration, ids);
      return;
    }
    case OP.SIGMOID_BACKPROP: {
      const [G, A, D, M, N] = [arg(0), arg(1), arg(2), arg(3), arg(4)];
      const [lo, hi] = share(M, parts, p, 1);
      const m = hi - lo;
      const at = (x: number): Float32Array => f32(x + lo * N * 4, m * N);
      if (m > 0) sigmoidBackprop(at(G), at(A), at(D), m, N);
      return;
    }
    default:
      throw new Error(`unknown CPU thread job ${op}`);
  }
}
