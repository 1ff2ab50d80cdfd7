/**
 * The CPU backend (both engines, every workspace buffer NaN-poisoned before
 * use) against float64: backprop against central finite differences and an
 * analytic float64 backprop, CD-1 against a direct float64 computation with
 * the same Bernoulli draws, predict/propagate; bit-identical reruns; shape
 * errors that say what is wrong.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { BackpropSums, Cd1Sums, ComputeBackend, DenseLayer } from '../../../core/backend.ts';
import { CpuBackend, createCpuBackend } from '../../../core/cpu/index.ts';
import { uniform } from '../../../core/rng.ts';
import {
  bitsEqual,
  dense64,
  expectClose,
  generator,
  mlpGrad64,
  mlpLoss64,
  randomLabels,
  randomLayers,
  SEED,
  softmax64,
  testEngines,
  toLayer64,
  uniformArray,
} from './reference.ts';

const rand = generator(SEED ^ 0x5eed);
let backends: { name: string; backend: ComputeBackend }[] = [];

beforeAll(async () => {
  backends = (await testEngines()).map(({ name, engine }) => ({ name, backend: new CpuBackend(engine) }));
});

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

describe('createCpuBackend', () => {
  it('uses WebAssembly SIMD in Node and says so; engine "js" forces the TypeScript kernels', async () => {
    const auto = await createCpuBackend();
    expect(auto.kind).toBe('cpu');
    expect(auto.adapter).toBe('WebAssembly SIMD, 1 thread');
    const js = await createCpuBackend({ engine: 'js' });
    expect(js.adapter).toBe('TypeScript, 1 thread');
  });
});

describe('backprop', () => {
  it('matches float64 central finite differences on a 5-4-3-3 net (tolerance 1e-4 (1 + |g|))', async () => {
    const B = 6;
    const layers = randomLayers(rand, [5, 4, 3, 3], 1.5);
    const x = uniformArray(rand, B * 5, 0, 1);
    const labels = randomLabels(rand, B, 3);
    const l64 = layers.map(toLayer64);
    const h = 1e-5;
    for (const { name, backend } of backends) {
      const got = await backend.backprop({ layers, x, labels, batch: B });
      expect(got.count).toBe(B);
      expect(Math.abs(got.loss - mlpLoss64(l64, x, labels, B))).toBeLessThan(1e-5);
      for (let l = 0; l < layers.length; l++) {
        for (const [key, grad] of [['W', got.dW[l]!], ['b', got.db[l]!]] as const) {
          const p = l64[l]![key];
          for (let i = 0; i < p.length; i++) {
            const keep = p[i]!;
            p[i] = keep + h;
            const up = mlpLoss64(l64, x, labels, B);
            p[i] = keep - h;
            const down = mlpLoss64(l64, x, labels, B);
            p[i] = keep;
            const fd = (up - down) / (2 * h);
            const err = Math.abs(grad[i]! - fd);
            if (!(err <= 1e-4 * (1 + Math.abs(fd)))) {
              expect.fail(`${name}: d${key}[${l}][${i}] = ${grad[i]}, finite difference ${fd} (CPU_TEST_SEED=${SEED})`);
            }
          }
        }
      }
    }
  });

  for (const [sizes, B] of [
    [[61, 33, 17, 10], 37],
    [[7, 2], 1],
    [[784, 500, 500, 2000, 10], 100],
  ] as [number[], number][]) {
    it(`matches analytic float64 backprop on ${sizes.join('-')}, B = ${B} (max error 1e-4 of the largest gradient)`, async () => {
      const layers = randomLayers(rand, sizes, 0.15);
      const x = uniformArray(rand, B * sizes[0]!, 0, 1);
      const K = sizes[sizes.length - 1]!;
      const labels = randomLabels(rand, B, K);
      const l64 = layers.map(toLayer64);
      const want = mlpGrad64(l64, x, labels, B);
      const loss64 = mlpLoss64(l64, x, labels, B);
      const logits = dense64(layers.slice(0, -1).reduce<ArrayLike<number>>((a, l) => dense64(a, l, B, 'sigmoid'), x), layers[layers.length - 1]!, B, 'linear');
      let correct64 = 0;
      for (let i = 0; i < B; i++) {
        const row = Array.from(logits.subarray(i * K, (i + 1) * K));
        if (row.indexOf(Math.max(...row)) === labels[i]) correct64++;
      }
      // The TypeScript engine is too slow for the full DBN twice; it runs the small nets.
      const run = sizes[0] === 784 ? backends.slice(1) : backends;
      for (const { name, backend } of run) {
        const got = await backend.backprop({ layers, x, labels, batch: B });
        expect(Math.abs(got.loss - loss64), `${name} loss`).toBeLessThanOrEqual(1e-5 * loss64);
        expect(got.correct, `${name} correct`).toBe(correct64);
        for (let l = 0; l < layers.length; l++) {
          const tolW = 1e-4 * maxAbs(want.dW[l]!);
          const tolB = 1e-4 * maxAbs(want.db[l]!);
          expectClose(`${name} dW[${l}]`, got.dW[l]!, want.dW[l]!, () => tolW);
          expectClose(`${name} db[${l}]`, got.db[l]!, want.db[l]!, () => tolB);
        }
      }
    });
  }

  it('stays finite with saturated units (weights ±40: hidden pre-activations and logits in the hundreds)', async () => {
    const B = 9;
    const layers = randomLayers(rand, [13, 11, 5], 40);
    const x = uniformArray(rand, B * 13, 0, 1);
    const labels = randomLabels(rand, B, 5);
    for (const { name, backend } of backends) {
      const got = await backend.backprop({ layers, x, labels, batch: B });
      expect(Number.isFinite(got.loss), `${name} loss ${got.loss}`).toBe(true);
      expect(got.loss).toBeGreaterThan(100);
      for (const g of [...got.dW, ...got.db]) expect(g.every(Number.isFinite), name).toBe(true);
    }
  });

  it('gives bit-identical results when run twice, on one backend or two', async () => {
    const B = 23;
    const layers = randomLayers(rand, [45, 27, 13, 6], 0.5);
    const x = uniformArray(rand, B * 45, 0, 1);
    const labels = randomLabels(rand, B, 6);
    const req = { layers, x, labels, batch: B };
    for (const { name, backend } of backends) {
      const a = await backend.backprop(req);
      const b = await backend.backprop(req);
      const c = await (await createCpuBackend({ engine: name.startsWith('TypeScript') ? 'js' : 'auto' })).backprop(req);
      for (const other of [b, c]) {
        expect(other.loss).toBe(a.loss);
        for (let l = 0; l < layers.length; l++) {
          expect(bitsEqual(a.dW[l]!, other.dW[l]!), `${name} dW[${l}]`).toBe(true);
          expect(bitsEqual(a.db[l]!, other.db[l]!), `${name} db[${l}]`).toBe(true);
        }
      }
    }
  });

  it('returns arrays the caller owns: a later call does not change them', async () => {
    const layers = randomLayers(rand, [4, 3, 2], 1);
    for (const { backend } of backends) {
      const first: BackpropSums = await backend.backprop({ layers, x: uniformArray(rand, 8, 0, 1), labels: Uint8Array.from([0, 1]), batch: 2 });
      const copy = first.dW[0]!.slice();
      await backend.backprop({ layers, x: uniformArray(rand, 8, 0, 1), labels: Uint8Array.from([1, 1]), batch: 2 });
      expect(bitsEqual(first.dW[0]!, copy)).toBe(true);
    }
  });

  it('says what is wrong with mismatched shapes', async () => {
    const layers = randomLayers(rand, [4, 3, 2], 1);
    const backend = backends[1]!.backend;
    await expect(backend.backprop({ layers, x: new Float32Array(7), labels: new Uint8Array(2), batch: 2 })).rejects.toThrow(/x has 7 values, expected B x nIn = 2 x 4 = 8/);
    await expect(backend.backprop({ layers: [layers[1]!, layers[0]!], x: new Float32Array(6), labels: new Uint8Array(2), batch: 2 })).rejects.toThrow(/layer 0 has 2 outputs, layer 1 expects 4 inputs/);
    await expect(backend.backprop({ layers, x: new Float32Array(8), labels: new Uint8Array(3), batch: 2 })).rejects.toThrow(/3 labels for a batch of 2/);
  });
});

/**
 * CD-1 in float64, drawing s0 with the same counters. Returns null when some
 * draw lies within 1e-5 of its probability, where float32 rounding could
 * decide the sample differently (the caller then draws other inputs).
 */
function cd1Reference64(lower: readonly DenseLayer[], rbm: { V: number; H: number; W: Float32Array; b: Float32Array; c: Float32Array }, x: Float32Array, B: number, ids: Uint32Array, seed: number, iteration: number): { dW: Float64Array; db: Float64Array; dc: Float64Array; err: number } | null {
  const { V, H } = rbm;
  let v0: ArrayLike<number> = x;
  for (const l of lower) v0 = dense64(v0, l, B, 'sigmoid');
  const up = { nIn: V, nOut: H, W: rbm.W, b: rbm.c };
  const h0 = dense64(v0, up, B, 'sigmoid');
  const s0 = new Float64Array(B * H);
  for (let i = 0; i < B; i++) {
    for (let j = 0; j < H; j++) {
      const u = uniform(seed, iteration, ids[i]!, j);
      if (Math.abs(u - h0[i * H + j]!) < 1e-5) return null;
      s0[i * H + j] = u < h0[i * H + j]! ? 1 : 0;
    }
  }
  // v1 = sigmoid(s0 Wᵀ + b): W stored V x H, so Wᵀ as an H x V layer.
  const Wt = new Float64Array(H * V);
  for (let v = 0; v < V; v++) for (let h = 0; h < H; h++) Wt[h * V + v] = rbm.W[v * H + h]!;
  const v1 = dense64(s0, { nIn: H, nOut: V, W: Wt, b: rbm.b }, B, 'sigmoid');
  const h1 = dense64(v1, up, B, 'sigmoid');
  const dW = new Float64Array(V * H);
  const db = new Float64Array(V);
  const dc = new Float64Array(H);
  let err = 0;
  for (let i = 0; i < B; i++) {
    for (let v = 0; v < V; v++) {
      const d = v0[i * V + v]! - v1[i * V + v]!;
      db[v]! += d;
      err += d * d;
      for (let h = 0; h < H; h++) dW[v * H + h]! += v0[i * V + v]! * h0[i * H + h]! - v1[i * V + v]! * h1[i * H + h]!;
    }
    for (let h = 0; h < H; h++) dc[h]! += h0[i * H + h]! - h1[i * H + h]!;
  }
  return { dW, db, dc, err };
}

describe('cd1', () => {
  for (const [sizes, B] of [
    [[13, 7], 5],
    [[1, 1], 1],
    [[29, 17, 23], 19],
    [[50, 33, 41, 9], 11],
  ] as [number[], number][]) {
    it(`matches float64 CD-1 with the same draws on ${sizes.join('-')}, B = ${B} (error <= 1e-5 B)`, async () => {
      for (let attempt = 0; ; attempt++) {
        const lower = randomLayers(rand, sizes.slice(0, -1), 1);
        const V = sizes[sizes.length - 2]!;
        const H = sizes[sizes.length - 1]!;
        const rbm = { V, H, W: uniformArray(rand, V * H, -1, 1), b: uniformArray(rand, V, -1, 1), c: uniformArray(rand, H, -1, 1) };
        const x = uniformArray(rand, B * sizes[0]!, 0, 1);
        const ids = Uint32Array.from({ length: B }, () => Math.floor(rand() * 60000));
        const rng = { seed: Math.floor(rand() * 2 ** 32), iteration: Math.floor(rand() * 1000) };
        const want = cd1Reference64(lower, rbm, x, B, ids, rng.seed, rng.iteration);
        if (!want) {
          expect(attempt, 'inputs without a draw on the edge of its probability').toBeLessThan(20);
          continue;
        }
        for (const { name, backend } of backends) {
          const got: Cd1Sums = await backend.cd1({ lower, rbm, x, batch: B, exampleIds: ids, rng });
          expect(got.count).toBe(B);
          expectClose(`${name} dW`, got.dW, want.dW, () => 1e-5 * B);
          expectClose(`${name} db`, got.db, want.db, () => 1e-5 * B);
          expectClose(`${name} dc`, got.dc, want.dc, () => 1e-5 * B);
          expect(Math.abs(got.reconError - want.err), `${name} reconError`).toBeLessThanOrEqual(1e-5 * B * V);
        }
        return;
      }
    });
  }

  it('gives bit-identical results twice, and different samples for another iteration', async () => {
    const [B, V, H] = [17, 31, 19];
    const rbm = { V, H, W: uniformArray(rand, V * H, -1, 1), b: uniformArray(rand, V), c: uniformArray(rand, H) };
    const x = uniformArray(rand, B * V, 0, 1);
    const ids = Uint32Array.from({ length: B }, (_, i) => 1000 + i);
    for (const { name, backend } of backends) {
      const req = { lower: [], rbm, x, batch: B, exampleIds: ids, rng: { seed: 3, iteration: 5 } };
      const a = await backend.cd1(req);
      const b = await backend.cd1(req);
      expect(bitsEqual(a.dW, b.dW) && bitsEqual(a.db, b.db) && bitsEqual(a.dc, b.dc), name).toBe(true);
      expect(a.reconError).toBe(b.reconError);
      const c = await backend.cd1({ ...req, rng: { seed: 3, iteration: 6 } });
      expect(bitsEqual(a.dW, c.dW), `${name}: iteration 6 draws other samples`).toBe(false);
    }
  });

  it('says what is wrong with mismatched shapes', async () => {
    const backend = backends[1]!.backend;
    const rbm = { V: 3, H: 2, W: new Float32Array(6), b: new Float32Array(3), c: new Float32Array(2) };
    const base = { lower: [], rbm, x: new Float32Array(6), batch: 2, exampleIds: new Uint32Array(2), rng: { seed: 1, iteration: 0 } };
    await expect(backend.cd1({ ...base, x: new Float32Array(5) })).rejects.toThrow(/x has 5 values, expected B x 3 = 6/);
    await expect(backend.cd1({ ...base, exampleIds: new Uint32Array(1) })).rejects.toThrow(/1 example ids for a batch of 2/);
    await expect(backend.cd1({ ...base, rbm: { ...rbm, c: new Float32Array(3) } })).rejects.toThrow(/RBM 3x2 has W 6, b 3, c 3 values/);
  });
});

describe('predict and propagate', () => {
  it('match float64 forward passes on 37-19-11-7, B = 13 (4e-6 absolute)', async () => {
    const B = 13;
    const layers = randomLayers(rand, [37, 19, 11, 7], 1);
    const x = uniformArray(rand, B * 37, 0, 1);
    const hidden = layers.slice(0, -1).reduce<ArrayLike<number>>((a, l) => dense64(a, l, B, 'sigmoid'), x);
    const probs = softmax64(dense64(hidden, layers[2]!, B, 'linear'), B, 7).probs;
    const top = dense64(hidden, layers[2]!, B, 'sigmoid');
    for (const { name, backend } of backends) {
      expectClose(`${name} predict`, await backend.predict(layers, x, B), probs, () => 4e-6);
      expectClose(`${name} propagate`, await backend.propagate(layers, x, B), top, () => 4e-6);
      expectClose(`${name} propagate 2 layers`, await backend.propagate(layers.slice(0, 2), x, B), hidden, () => 4e-6);
    }
  });
});
