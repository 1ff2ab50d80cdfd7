/**
 * The WebAssembly SIMD engine: the matmul kernels of assembly/simd.as.ts
 * running on buffers in the module's own memory (a WasmWorkspace), so no
 * operand is copied per call. Loaded from bytes embedded in
 * simd-wasm.generated.ts: no fetch, no fs, the same in every runtime.
 */
import type { CpuEngine, MatmulFn } from './cpu-backend.ts';
import type { MatmulForm } from './kernels.ts';
import { SIMD_WASM_BASE64 } from './simd-wasm.generated.ts';
import { WasmWorkspace } from './workspace.ts';

interface SimdExports {
  readonly memory: WebAssembly.Memory;
  heapBase(): number;
  matmulBroadcast(a: number, sI: number, sK: number, b: number, c: number, M: number, K: number, N: number): void;
  matmulNT(a: number, b: number, c: number, M: number, K: number, N: number): void;
}

/** The embedded module's bytes. */
export function simdWasmBytes(): Uint8Array<ArrayBuffer> {
  const s = atob(SIMD_WASM_BASE64);
  const bytes = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) bytes[i] = s.charCodeAt(i);
  return bytes;
}

/**
 * Compiles and instantiates the SIMD kernels; null where the runtime has no
 * WebAssembly or no SIMD (the module then fails to compile).
 */
export async function createSimdEngine(): Promise<CpuEngine | null> {
  if (typeof WebAssembly === 'undefined') return null;
  let instance: WebAssembly.Instance;
  try {
    const module = await WebAssembly.compile(simdWasmBytes());
    instance = await WebAssembly.instantiate(module, {});
  } catch {
    return null;
  }
  const wasm = instance.exports as unknown as SimdExports;
  const memory = wasm.memory;
  const workspace = new WasmWorkspace(memory, wasm.heapBase());

  const addr = operandAddress(memory);
  const matmul: MatmulFn = (form: MatmulForm, A, B, C, M, K, N) => {
    const a = addr('A', A, M * K);
    const b = addr('B', B, K * N);
    const c = addr('C', C, M * N);
    if (form === 'nt') wasm.matmulNT(a, b, c, M, K, N);
    else if (form === 'nn') wasm.matmulBroadcast(a, K, 1, b, c, M, K, N);
    else wasm.matmulBroadcast(a, 1, M, b, c, M, K, N);
  };
  return { name: 'WebAssembly SIMD, 1 thread', matmul, workspace };
}

/**
 * The byte address of a matmul operand in `memory` (the one-thread and the
 * threaded engines alike): refuses an array outside it, or shorter than the
 * kernel needs.
 */
export function operandAddress(memory: WebAssembly.Memory): (name: string, a: Float32Array, need: number) => number {
  return (name, a, need) => {
    if (a.buffer !== memory.buffer) {
      throw new Error(`matmul operand ${name} is not in the SIMD engine's memory: take it from engine.workspace.reserve()`);
    }
    if (a.length < need) throw new RangeError(`${name} has ${a.length} elements, the kernel needs ${need}`);
    return a.byteOffset;
  };
}
