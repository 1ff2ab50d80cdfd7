/**
 * The webgpu backend's checks on Deno's WebGPU (lavapipe in CI, a real GPU's
 * Vulkan driver in bench/gpu.sh). Run: node_modules/.bin/deno test -A test/webgpu/
 */
import type { ComputeBackend } from '../../core/backend.ts';
import { pickBackend } from '../../core/pick-backend.ts';
import { CPU_TUNING, createWebGpuBackend, GPU_TUNING, type WebGpuBackend } from '../../core/webgpu/index.ts';
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
  name: 'adapter: described, tuned for what it is, and judged the same way by the backend picker',
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const b = await backend();
    console.log(`webgpu adapter: ${b.adapter}; matmul tiles ${JSON.stringify(b.tuning.large)}`);
    const info = b.gpu.adapter;
    if (b.kind !== 'webgpu') throw new Error(`kind is ${b.kind}`);
    if (!info.description || b.adapter !== `${info.description} (WebGPU)`) throw new Error(`adapter "${b.adapter}" does not name the adapter "${info.description}"`);
    const expected = info.cpuEmulated ? CPU_TUNING : GPU_TUNING;
    if (b.tuning !== expected) throw new Error(`${info.cpuEmulated ? 'a software' : 'a hardware'} adapter got the other tuning: ${JSON.stringify(b.tuning)}`);
    // the device really has the storage room a 784-500 layer's weights need
    if (b.gpu.device.limits.maxStorageBufferBindingSize < 784 * 2000 * 4) throw new Error(`maxStorageBufferBindingSize ${b.gpu.device.limits.maxStorageBufferBindingSize}`);
    // the picker reads the same adapter the same way: auto takes the CPU backend exactly on a software adapter
    const picked = await pickBackend('auto', {
      gpu: navigator.gpu,
      createCpu: async () => ({ kind: 'cpu' }) as unknown as ComputeBackend,
      createWebGpu: async () => ({ kind: 'webgpu' }) as unknown as ComputeBackend,
    });
    if (picked.backend.kind !== (info.cpuEmulated ? 'cpu' : 'webgpu')) throw new Error(`the picker took ${picked.backend.kind} on ${info.description} (cpuEmulated ${info.cpuEmulated})`);
  },
});
