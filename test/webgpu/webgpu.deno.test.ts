/**
 * The webgpu backend's checks on Deno's WebGPU (lavapipe in CI, a real GPU's
 * Vulkan driver in bench/gpu.sh). Run: node_modules/.bin/deno test -A test/webgpu/
 */
import { createWebGpuBackend, type WebGpuBackend } from '../../core/webgpu/index.ts';
import { CASES } from './cases.ts';

let shared: WebGpuBackend | null = null;
const backend = async (): Promise<WebGpuBackend> => (shared ??= await createWebGpuBackend({ poison: true }));

for (const c of CASES) {
  Deno.test({
    name: c.name,
    // GPU objects and mapping promises outlive single tests by design (one device for the suite).
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => c.run({ backend: await backend(), create: (o) => createWebGpuBackend(o) }),
  });
}

Deno.test({
  name: 'adapter',
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const b = await backend();
    console.log(`webgpu adapter: ${b.adapter}; matmul tiles ${JSON.stringify(b.tuning.large)}`);
  },
});
