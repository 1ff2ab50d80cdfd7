/**
 * The committed WebAssembly (core/cpu/simd-wasm.generated.ts) is what
 * its AssemblyScript source compiles to: rebuilding reproduces it byte for
 * byte, so the two cannot drift. On failure: `npm run build:wasm` and commit.
 */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { simdWasmBytes } from '../../../core/cpu/simd.ts';
import { buildSimdWasm, GENERATED } from '../../../scripts/build-wasm.ts';

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
});
