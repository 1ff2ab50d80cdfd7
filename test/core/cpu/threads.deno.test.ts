/**
 * The threaded CPU engine in Deno, where the headless worker runs it: helper
 * threads are module Web Workers (threads.ts's webSpawner). A fine-tuning
 * step and a CD-1 step at awkward sizes, every job split across 3 threads,
 * and the seed network's shapes on 2 threads with the default split, against
 * the one-thread SIMD engine: bit-identical (see threads.test.ts).
 */
import type { ComputeBackend, DenseLayer } from '../../../core/backend.ts';
import { CpuBackend, createCpuBackend, createThreadedEngine } from '../../../core/cpu/index.ts';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}
const rand = rng(Date.now());
const arr = (n: number, lo: number, hi: number): Float32Array => Float32Array.from({ length: n }, () => lo + (hi - lo) * rand());
const layersOf = (sizes: number[], scale: number): DenseLayer[] =>
  sizes.slice(1).map((nOut, l) => ({ nIn: sizes[l]!, nOut, W: arr(sizes[l]! * nOut, -scale, scale), b: arr(nOut, -scale, scale) }));

function same(got: Float32Array, want: Float32Array, what: string): void {
  if (got.length !== want.length) throw new Error(`${what}: ${got.length} values, one thread gives ${want.length}`);
  for (let i = 0; i < got.length; i++) {
    if (!Object.is(got[i], want[i])) throw new Error(`${what}[${i}] = ${got[i]}, one thread gives ${want[i]}`);
  }
}

async function compare(one: ComputeBackend, many: ComputeBackend, sizes: number[], B: number, rbmAt: number): Promise<void> {
  const layers = layersOf(sizes, 0.5);
  const x = arr(B * sizes[0]!, 0, 1);
  const labels = Uint8Array.from({ length: B }, () => Math.floor(rand() * sizes[sizes.length - 1]!));
  const a = await one.backprop({ layers, x, labels, batch: B });
  const b = await many.backprop({ layers, x, labels, batch: B });
  if (a.loss !== b.loss || a.correct !== b.correct) throw new Error(`loss ${b.loss} / ${b.correct} correct vs one thread ${a.loss} / ${a.correct}`);
  for (let l = 0; l < layers.length; l++) {
    same(b.dW[l]!, a.dW[l]!, `dW[${l}]`);
    same(b.db[l]!, a.db[l]!, `db[${l}]`);
  }
  const { nIn: V, nOut: H } = layers[rbmAt]!;
  const req = {
    lower: layers.slice(0, rbmAt),
    rbm: { V, H, W: layers[rbmAt]!.W, b: arr(V, -0.5, 0.5), c: layers[rbmAt]!.b },
    x,
    batch: B,
    exampleIds: Uint32Array.from({ length: B }, () => Math.floor(rand() * 60000)),
    rng: { seed: 7, iteration: 3 },
  };
  const c = await one.cd1(req);
  const d = await many.cd1(req);
  if (c.reconError !== d.reconError) throw new Error(`reconError ${d.reconError} vs one thread ${c.reconError}`);
  same(d.dW, c.dW, 'CD-1 dW');
  same(d.db, c.db, 'CD-1 db');
  same(d.dc, c.dc, 'CD-1 dc');
}

Deno.test('threaded CPU engine (Web Worker helpers) equals one thread: fine-tuning and CD-1, awkward sizes and the seed network', async () => {
  const one = await createCpuBackend({ threads: 1 });
  const split = await createThreadedEngine({ threads: 3, minParallel: { macs: 0, elements: 0 } });
  if (!split) throw new Error('the threaded engine failed to start in Deno');
  const every = new CpuBackend(split);
  const two = await createCpuBackend({ threads: 2 });
  try {
    if (two.adapter !== 'WebAssembly SIMD, 2 threads') throw new Error(`adapter "${two.adapter}"`);
    await compare(one, every, [43, 37, 29, 7], 21, 1);
    await compare(one, two, [784, 500, 500, 2000, 10], 100, 2);
  } finally {
    every.dispose();
    two.dispose();
  }
});
