/**
 * The CPU compute backend (kind 'cpu'): the reference implementation and the
 * fallback for runtimes without WebGPU. Runs in Node, Deno, browsers and Web
 * Workers alike.
 */
import type { ComputeBackend } from '../backend.ts';
import { CpuBackend, type CpuEngine } from './cpu-backend.ts';
import { matmul } from './kernels.ts';
import { createSimdEngine } from './simd.ts';
import { checkThreads, createThreadedEngine, type ThreadSpawner } from './threads.ts';
import { ArrayWorkspace } from './workspace.ts';

export interface CpuBackendOptions {
  /**
   * 'auto' (default): WebAssembly SIMD kernels where the runtime has them,
   * else plain TypeScript; 'js': always the plain TypeScript kernels.
   */
  readonly engine?: 'auto' | 'js';
  /**
   * Threads for the WebAssembly SIMD engine, the calling thread included
   * (default 1). Above 1 the engine shares one WebAssembly memory between
   * helper threads (threads.ts); where memory cannot be shared (a browser
   * page that is not cross-origin isolated) it runs on one thread, and
   * `adapter` says so.
   */
  readonly threads?: number;
  /** how to start a helper thread (default: a module Web Worker; Node: nodeSpawner from threads-node.ts) */
  readonly spawn?: ThreadSpawner;
}

/** The plain TypeScript engine. */
export function jsEngine(): CpuEngine {
  return { name: 'TypeScript, 1 thread', matmul, workspace: new ArrayWorkspace() };
}

/**
 * The CPU backend on the fastest engine the runtime has (see `adapter` for
 * which): WebAssembly SIMD kernels, else plain TypeScript.
 */
export async function createCpuBackend(opts: CpuBackendOptions = {}): Promise<ComputeBackend> {
  const threads = checkThreads(opts.threads ?? 1);
  if (opts.engine !== 'js' && threads > 1) {
    const threaded = await createThreadedEngine({ threads, spawn: opts.spawn });
    if (threaded) return new CpuBackend(threaded);
  }
  const simd = opts.engine === 'js' ? null : await createSimdEngine();
  if (simd && threads > 1) return new CpuBackend({ ...simd, name: `${simd.name} (${threads} threads asked; memory cannot be shared here)` });
  return new CpuBackend(simd ?? jsEngine());
}

export { CpuBackend, type CpuEngine, type MatmulFn, type RowKernels } from './cpu-backend.ts';
export * from './kernels.ts';
export { createSimdEngine } from './simd.ts';
export { canShareMemory, createThreadedEngine, MAX_THREADS, type ThreadSpawner } from './threads.ts';
