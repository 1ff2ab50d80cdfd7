/**
 * The committed WebAssembly modules (core/cpu/simd-wasm.generated.ts,
 * core/cpu/simd-shared-wasm.generated.ts,
 * coordinator/aggregate/add-wasm.generated.ts) are what their AssemblyScript
 * sources compile to: rebuilding reproduces each byte for byte, so source and
 * bytes cannot drift. On failure: `npm run build:wasm` and commit.
 */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { ADD_WASM_BASE64 } from '../../../coordinator/aggregate/add-wasm.generated.ts';
import { simdSharedWasmBytes } from '../../../core/cpu/threads.ts';
import { simdWasmBytes } from '../../../core/cpu/simd.ts';
import { buildSimdWasm, buildWasm, GENERATED, TARGETS } from '../../../scripts/build-wasm.ts';

const bytesOf = (b64: string): Uint8Array<ArrayBuffer> => Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));

describe('SIMD wasm build', () => {
  it('rebuilding assembly/simd.as.ts reproduces the committed module byte for byte', async () => {
    const { wasm, moduleText } = await buildSimdWasm();
    const committed = simdWasmBytes();
    expect(committed.length, 'committed wasm is stale: run `npm run build:wasm`').toBe(wasm.length);
    expect(Buffer.from(committed).equals(Buffer.from(wasm)), 'committed wasm is stale: run `npm run build:wasm`').toBe(true);
    expect(await readFile(GENERATED, 'utf8')).toBe(moduleText);
  });

  it('is small enough to compile synchronously on a browser main thread (< 4 KB) and exports the kernels', () => {
    const bytes = simdWasmBytes();
    expect(bytes.length).toBeLessThan(4096);
    const mod = new WebAssembly.Module(bytes);
    expect(WebAssembly.Module.exports(mod).map((e) => e.name).sort()).toEqual(['heapBase', 'matmulBroadcast', 'matmulNT', 'memory']);
  });

  it('rebuilding the shared-memory kernels and the aggregator add reproduces their committed modules', async () => {
    for (const [target, committed] of [
      [TARGETS.simdShared, simdSharedWasmBytes()],
      [TARGETS.aggregateAdd, bytesOf(ADD_WASM_BASE64)],
    ] as const) {
      const { wasm, moduleText } = await buildWasm(target);
      expect(Buffer.from(committed).equals(Buffer.from(wasm)), `${target.generated} is stale: run \`npm run build:wasm\``).toBe(true);
      expect(await readFile(target.generated, 'utf8')).toBe(moduleText);
    }
  });

  it('the shared-memory kernels import one shared memory and export the same kernels', () => {
    const mod = new WebAssembly.Module(simdSharedWasmBytes());
    expect(WebAssembly.Module.exports(mod).map((e) => e.name).sort()).toEqual(['heapBase', 'matmulBroadcast', 'matmulNT']);
    expect(WebAssembly.Module.imports(mod)).toEqual([{ module: 'env', name: 'memory', kind: 'memory' }]);
    // an unshared memory is refused: the module declares its memory shared
    expect(() => new WebAssembly.Instance(mod, { env: { memory: new WebAssembly.Memory({ initial: 1 }) } })).toThrow();
  });

  it('the aggregator add imports its memory and exports add alone', () => {
    const mod = new WebAssembly.Module(bytesOf(ADD_WASM_BASE64));
    expect(WebAssembly.Module.exports(mod).map((e) => e.name)).toEqual(['add']);
    expect(WebAssembly.Module.imports(mod)).toEqual([{ module: 'env', name: 'memory', kind: 'memory' }]);
  });
});
