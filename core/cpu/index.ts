/**
 * The CPU compute backend (kind 'cpu'): the reference implementation and the
 * fallback for runtimes without WebGPU. Runs in Node, Deno, browsers and Web
 * Workers alike.
 */
import type { ComputeBackend } from '../backend.ts';
import { CpuBackend, type CpuEngine } from './cpu-backend.ts';
import { matmul } from './kernels.ts';
import { createSimdEngine } from './simd.ts';
import { ArrayWorkspace } from './workspace.ts';

export interface CpuBackendOptions {
  /**
   * 'auto' (default): WebAssembly SIMD kernels where the runtime has them,
   * else plain TypeScript; 'js': always the plain TypeScript kernels.
   */
  readonly engine?: 'auto' | 'js';
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
  const simd = opts.engine === 'js' ? null : await createSimdEngine();
  return new CpuBackend(simd ?? jsEngine());
}

export { CpuBackend, type CpuEngine, type MatmulFn } from './cpu-backend.ts';
export * from './kernels.ts';
export { createSimdEngine } from './simd.ts';
