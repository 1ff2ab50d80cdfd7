/**
 * The one backend picker, shared by the Deno worker (client/deno/worker.ts)
 * and the browser's donor worker (client/web/donor.worker.ts).
 *
 * `auto` takes WebGPU on a real GPU and the CPU backend otherwise: where
 * there is no WebGPU, no adapter, or the adapter is a software one
 * (lavapipe, SwiftShader, WARP; `isFallbackAdapter`), which runs our kernels
 * 4-10x slower than the CPU backend's WebAssembly SIMD (bench/README.md;
 * about 80 against 800 examples/s for a browser tab on SwiftShader).
 * `webgpu` forces WebGPU, software adapter or not, and fails when there is
 * none; `cpu` forces the CPU backend.
 *
 * The backends' factories are passed in, so each runtime loads only what it
 * uses (Deno imports the WebGPU code only when it picks it) and the choice
 * is unit-tested with fakes.
 */
import type { ComputeBackend } from './backend.ts';
import { summariseAdapter } from './webgpu/adapter.ts';

export const BACKEND_CHOICES = ['auto', 'webgpu', 'cpu'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

export interface BackendFactories {
  /** `navigator.gpu` where the runtime has one */
  readonly gpu: GPU | undefined;
  readonly createCpu: () => Promise<ComputeBackend>;
  readonly createWebGpu: (adapter: GPUAdapter) => Promise<ComputeBackend>;
  /** how a person forces WebGPU here ("--backend webgpu forces WebGPU"), added to the fallback reason */
  readonly forceHint?: string;
}

export interface PickedBackend {
  readonly backend: ComputeBackend;
  /** why WebGPU was not used, when `auto` fell back to the CPU; null otherwise */
  readonly fallbackReason: string | null;
}

const firstLine = (e: unknown): string => (e instanceof Error ? e.message : String(e)).split('\n')[0]!;

/** Picks and creates the backend for `choice`; throws only when `webgpu` was chosen and cannot start. */
export async function pickBackend(choice: BackendChoice, f: BackendFactories): Promise<PickedBackend> {
  if (choice === 'cpu') return { backend: await f.createCpu(), fallbackReason: null };
  let reason: string;
  try {
    const adapter = f.gpu ? await f.gpu.requestAdapter({ powerPreference: 'high-performance' }) : undefined;
    if (!f.gpu) reason = 'this runtime does not expose WebGPU here (navigator.gpu is missing)';
    else if (!adapter) reason = 'WebGPU is there but gives no adapter (no usable GPU or driver, or the GPU is blocklisted)';
    else {
      const summary = summariseAdapter(adapter.info);
      if (choice === 'webgpu' || !summary.cpuEmulated) return { backend: await f.createWebGpu(adapter), fallbackReason: null };
      reason = `the WebGPU adapter "${summary.description}" is a software renderer, slower than the CPU backend${f.forceHint ? ` (${f.forceHint})` : ''}`;
    }
  } catch (e) {
    reason = `WebGPU failed to start: ${firstLine(e)}`;
    if (choice === 'webgpu') throw new Error(`WebGPU was chosen, but ${reason}`);
  }
  if (choice === 'webgpu') throw new Error(`WebGPU was chosen, but ${reason}`);
  return { backend: await f.createCpu(), fallbackReason: reason };
}
