/** The webgpu checks in a browser page: chromium.test.ts calls window.runWebGpuCases(). */
import { createWebGpuBackend } from '../../core/webgpu/index.ts';
import { CASES } from './cases.ts';

export interface CaseResult {
  readonly name: string;
  readonly ok: boolean;
  readonly error?: string;
  readonly ms: number;
}

async function runWebGpuCases(): Promise<{ adapter: string; results: CaseResult[] }> {
  const backend = await createWebGpuBackend({ poison: true });
  const results: CaseResult[] = [];
  for (const c of CASES) {
    const t = performance.now();
    try {
      await c.run({ backend, create: (o) => createWebGpuBackend(o) });
      results.push({ name: c.name, ok: true, ms: performance.now() - t });
    } catch (e) {
      results.push({ name: c.name, ok: false, error: String((e as Error).stack ?? e), ms: performance.now() - t });
    }
  }
  const adapter = backend.adapter;
  backend.dispose();
  return { adapter, results };
}

(globalThis as unknown as { runWebGpuCases: typeof runWebGpuCases }).runWebGpuCases = runWebGpuCases;
