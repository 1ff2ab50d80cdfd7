/**
 * The threaded CPU engine (core/cpu/threads.ts) against the
 * one-thread SIMD engine: fine-tuning (backprop), CD-1, predict and
 * propagate at awkward sizes with every job split across 2 and 3 threads,
 * and at the seed network's shapes with the default split thresholds. Each
 * output element is computed by the same kernel in the same order whichever
 * thread computes it, so the results are bit-identical (stronger than the
 * float-summation tolerance a split-K would need). Helpers run in Node
 * worker_threads (threads-node.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ComputeBackend, DenseLayer } from '../../../core/backend.ts';
import { CpuBackend, createCpuBackend, createThreadedEngine } from '../../../core/cpu/index.ts';
import { createSimdEngine } from '../../../core/cpu/simd.ts';
import { nodeSpawner } from '../../../core/cpu/threads-node.ts';
import { bitsEqual, generator, PoisonWorkspace, randomLabels, randomLayers, SEED, uniformArray } from './reference.ts';

const rand = generator(SEED ^ 0x7157);
let one: ComputeBackend;
const threaded: { name: string; backend: ComputeBackend }[] = [];

beforeAll(async () => {
  const simd = await createSimdEngine();
  if (!simd) throw new Error('WebAssembly SIMD engine failed to load in Node');
  one = new CpuBackend({ ...simd, workspace: new PoisonWorkspace(simd.workspace) });
  for (const threads of [2, 3]) {
    const e = await createThreadedEngine({ threads, spawn: nodeSpawner, minParallel: { macs: 0, elements: 0 } });
    if (!e) throw new Error('the threaded engine failed to start in Node');
    threaded.push({ name: `${threads} threads, every job split`, backend: new CpuBackend({ ...e, workspace: new PoisonWorkspace(e.workspace) }) });
  }
  const e = await createThreadedEngine({ threads: 2, spawn: nodeSpawner });
  threaded.push({ name: '2 threads, default split', backend: new CpuBackend(e!) });
});

afterAll(() => {
  for (const t of threaded) t.backend.dispose();
});

function expectSame(got: Float32Array, want: Float32Array, what: string): void {
  expect(got.length, what).toBe(want.length);
  if (!bitsEqual(got, want)) {
    let i = 0;
    while (Object.is(got[i], want[i])) i++;
    expect.fail(`${what}[${i}] = ${got[i]}, one thread gives ${want[i]} (CPU_TEST_SEED=${SEED})`);
  }
}

describe('threaded CPU engine', () => {
  it('backprop equals the one-thread engine on awkward sizes (B = 19, 37-53-29-7)', async () => {
    const B = 19;
    const layers = randomLayers(rand, [37, 53, 29, 7], 1);
    const x = uniformArray(rand, B * 37, 0, 1);
    const labels = randomLabels(rand, B, 7);
    const want = await one.backprop({ layers, x, labels, batch: B });
    for (const { name, backend } of threaded) {
      const got = await backend.backprop({ layers, x, labels, batch: B });
      expect([got.loss, got.correct, got.count], name).toEqual([want.loss, want.correct, want.count]);
      for (let l = 0; l < layers.length; l++) {
        expectSame(got.dW[l]!, want.dW[l]!, `${name}: dW[${l}]`);
        expectSame(got.db[l]!, want.db[l]!, `${name}: db[${l}]`);
      }
    }
  });

  it('CD-1 equals the one-thread engine on awkward sizes (B = 23, lower 41-31, RBM 31x45)', async () => {
    const B = 23;
    const lower = randomLayers(rand, [41, 31], 1);
    const [V, H] = [31, 45];
    const rbm = { V, H, W: uniformArray(rand, V * H, -0.5, 0.5), b: uniformArray(rand, V, -0.5, 0.5), c: uniformArray(rand, H, -0.5, 0.5) };
    const x = uniformArray(rand, B * 41, 0, 1);
    const exampleIds = Uint32Array.from({ length: B }, () => Math.floor(rand() * 60000));
    const rng = { seed: 0xdeadbeef, iteration: 17 };
    const want = await one.cd1({ lower, rbm, x, batch: B, exampleIds, rng });
    for (const { name, backend } of threaded) {
      const got = await backend.cd1({ lower, rbm, x, batch: B, exampleIds, rng });
      expect([got.reconError, got.count], name).toEqual([want.reconError, want.count]);
      expectSame(got.dW, want.dW, `${name}: dW`);
      expectSame(got.db, want.db, `${name}: db`);
      expectSame(got.dc, want.dc, `${name}: dc`);
    }
  });

  it('predict and propagate equal the one-thread engine', async () => {
    const B = 13;
    const layers = randomLayers(rand, [29, 17, 5], 1);
    const x = uniformArray(rand, B * 29, 0, 1);
    const p = await one.predict(layers, x, B);
    const h = await one.propagate(layers, x, B);
    for (const { name, backend } of threaded) {
      expectSame(await backend.predict(layers, x, B), p, `${name}: predict`);
      expectSame(await backend.propagate(layers, x, B), h, `${name}: propagate`);
    }
  });

  it('fine-tuning and CD-1 steps of the seed network 784-500-500-2000-10 at batch 100 equal one thread', async () => {
    const B = 100;
    const layers: DenseLayer[] = randomLayers(rand, [784, 500, 500, 2000, 10], 0.05);
    const x = uniformArray(rand, B * 784, 0, 1);
    const labels = randomLabels(rand, B, 10);
    const want = await one.backprop({ layers, x, labels, batch: B });
    const rbm = { V: 500, H: 2000, W: layers[2]!.W, b: uniformArray(rand, 500, -0.1, 0.1), c: layers[2]!.b };
    const exampleIds = Uint32Array.from({ length: B }, (_, i) => 1000 + 7 * i);
    const req = { lower: layers.slice(0, 2), rbm, x, batch: B, exampleIds, rng: { seed: 1, iteration: 2 } };
    const wantCd = await one.cd1(req);
    for (const { name, backend } of threaded) {
      const got = await backend.backprop({ layers, x, labels, batch: B });
      expect(got.loss, name).toBe(want.loss);
      for (let l = 0; l < layers.length; l++) expectSame(got.dW[l]!, want.dW[l]!, `${name}: dW[${l}]`);
      const cd = await backend.cd1(req);
      expect(cd.reconError, name).toBe(wantCd.reconError);
      expectSame(cd.dW, wantCd.dW, `${name}: CD-1 dW`);
      expectSame(cd.dc, wantCd.dc, `${name}: CD-1 dc`);
    }
  });
});

describe('createCpuBackend threads', () => {
  it('says how many threads run the kernels', async () => {
    const b = await createCpuBackend({ threads: 2, spawn: nodeSpawner });
    expect(b.adapter).toBe('WebAssembly SIMD, 2 threads');
    b.dispose();
    const single = await createCpuBackend({ threads: 1 });
    expect(single.adapter).toBe('WebAssembly SIMD, 1 thread');
  });

  it('runs on one thread where memory cannot be shared (a page that is not cross-origin isolated), and says so', async () => {
    const g = globalThis as { crossOriginIsolated?: boolean };
    g.crossOriginIsolated = false;
    try {
      const b = await createCpuBackend({ threads: 2, spawn: () => expect.fail('spawned a thread') });
      expect(b.adapter).toBe('WebAssembly SIMD, 1 thread (2 threads asked; memory cannot be shared here)');
    } finally {
      delete g.crossOriginIsolated;
    }
  });

  it('refuses a thread count that is not an integer from 1 to 64, starting nothing', async () => {
    for (const threads of [0, -1, 1.5, 65, NaN]) {
      await expect(createCpuBackend({ threads, spawn: () => expect.fail('spawned a thread') })).rejects.toThrow(/threads must be an integer from 1 to 64/);
    }
  });
});
