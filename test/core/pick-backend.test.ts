/**
 * The backend picker shared by the Deno and browser workers, with fake
 * adapters: auto takes WebGPU on a real GPU only, webgpu forces it (and
 * fails where there is none), cpu forces the CPU backend.
 */
import { describe, expect, it } from 'vitest';
import type { ComputeBackend } from '../../core/backend.ts';
import { pickBackend, type BackendFactories } from '../../core/pick-backend.ts';

const fake = (kind: 'cpu' | 'webgpu', adapter: string = kind): ComputeBackend => ({ kind, adapter }) as unknown as ComputeBackend;

function gpuWith(info: Partial<GPUAdapterInfo & { isFallbackAdapter: boolean }> | null | Error): GPU {
  return {
    requestAdapter: async () => {
      if (info instanceof Error) throw info;
      return info === null ? null : ({ info } as unknown as GPUAdapter);
    },
  } as unknown as GPU;
}

function factories(gpu: GPU | undefined, created: string[], failWebGpu = false): BackendFactories {
  return {
    gpu,
    createCpu: async () => {
      created.push('cpu');
      return fake('cpu');
    },
    createWebGpu: async (a) => {
      created.push('webgpu');
      if (failWebGpu) throw new Error('device lost\nat line 2');
      return fake('webgpu', (a.info as GPUAdapterInfo).description);
    },
    forceHint: '--backend webgpu forces WebGPU',
  };
}

const REAL = { vendor: 'nvidia', architecture: 'hopper', description: 'NVIDIA H100' };
const SWIFTSHADER = { vendor: 'google', architecture: 'swiftshader', description: '' };
const LAVAPIPE = { vendor: 'mesa', architecture: '', description: 'llvmpipe (LLVM 15.0.6, 256 bits)' };
const FALLBACK = { vendor: 'x', architecture: 'y', description: 'Some adapter', isFallbackAdapter: true };

describe('pickBackend', () => {
  it('auto: WebGPU on a real GPU', async () => {
    const created: string[] = [];
    const p = await pickBackend('auto', factories(gpuWith(REAL), created));
    expect(p.backend.kind).toBe('webgpu');
    expect(p.backend.adapter).toBe('NVIDIA H100');
    expect(p.fallbackReason).toBeNull();
    expect(created).toEqual(['webgpu']);
  });

  for (const [name, info] of [['SwiftShader', SWIFTSHADER], ['lavapipe', LAVAPIPE], ['a fallback adapter', FALLBACK]] as const) {
    it(`auto: the CPU backend on ${name}, saying why and how to force WebGPU`, async () => {
      const created: string[] = [];
      const p = await pickBackend('auto', factories(gpuWith(info), created));
      expect(p.backend.kind).toBe('cpu');
      expect(created).toEqual(['cpu']); // no WebGPU device was made
      expect(p.fallbackReason).toMatch(/software renderer, slower than the CPU backend \(--backend webgpu forces WebGPU\)/);
    });
  }

  it('auto: the CPU backend without WebGPU, without an adapter, or when WebGPU fails', async () => {
    const none = await pickBackend('auto', factories(undefined, []));
    expect([none.backend.kind, none.fallbackReason]).toEqual(['cpu', expect.stringMatching(/navigator\.gpu is missing/)]);
    const noAdapter = await pickBackend('auto', factories(gpuWith(null), []));
    expect([noAdapter.backend.kind, noAdapter.fallbackReason]).toEqual(['cpu', expect.stringMatching(/no adapter/)]);
    const thrown = await pickBackend('auto', factories(gpuWith(new Error('denied')), []));
    expect([thrown.backend.kind, thrown.fallbackReason]).toEqual(['cpu', 'WebGPU failed to start: denied']);
    const created: string[] = [];
    const deviceLost = await pickBackend('auto', factories(gpuWith(REAL), created, true));
    expect([deviceLost.backend.kind, deviceLost.fallbackReason]).toEqual(['cpu', 'WebGPU failed to start: device lost']);
    expect(created).toEqual(['webgpu', 'cpu']);
  });

  it('webgpu: forces WebGPU, software adapter or not; fails with the reason where there is none', async () => {
    expect((await pickBackend('webgpu', factories(gpuWith(SWIFTSHADER), []))).backend.kind).toBe('webgpu');
    await expect(pickBackend('webgpu', factories(undefined, []))).rejects.toThrow(/^WebGPU was chosen, but .*navigator\.gpu is missing/);
    await expect(pickBackend('webgpu', factories(gpuWith(null), []))).rejects.toThrow(/no adapter/);
    await expect(pickBackend('webgpu', factories(gpuWith(REAL), [], true))).rejects.toThrow('WebGPU was chosen, but WebGPU failed to start: device lost');
  });

  it('cpu: the CPU backend without asking for an adapter', async () => {
    let asked = false;
    const gpu = { requestAdapter: async () => ((asked = true), null) } as unknown as GPU;
    const p = await pickBackend('cpu', factories(gpu, []));
    expect([p.backend.kind, p.fallbackReason, asked]).toEqual(['cpu', null, false]);
  });
});
