/**
 * Test error of a weights snapshot, for the rig's time-to-accuracy curves.
 *
 * The job's own evaluations (API) come only at phase ends, so the rig also
 * downloads the live weights every few seconds (GET /admin/jobs/:id/weights)
 * and evaluates them here, after the point has ended (so this never competes
 * with the workers for the CPU). It reads only the documented formats (the
 * weights safetensors of coordinator/API.md, MNIST's IDX files) and imports
 * nothing of the engine, so it keeps working while the internals move.
 *
 * The MLP: h = sigmoid(x W_k + hbias_k) for each RBM k, then logits =
 * h W_out + b_out; the prediction is the argmax (softmax does not change it);
 * x = pixels / 255. Shapes: B = examples, V = visible units, H = hidden units.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

export interface TestSet {
  readonly count: number;
  /** pixels per image */
  readonly dim: number;
  /** count x dim bytes, 0..255 */
  readonly images: Uint8Array;
  readonly labels: Uint8Array;
}

/** Tensor name -> [shape, data], from a safetensors blob of F32 tensors. */
export function parseWeights(bytes: Uint8Array): Map<string, { shape: number[]; data: Float32Array }> {
  if (bytes.length < 8) throw new Error(`weights: ${bytes.length} bytes, expected a safetensors blob`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = dv.getUint32(0, true);
  if (dv.getUint32(4, true) !== 0 || 8 + n > bytes.length) throw new Error('weights: bad safetensors header length');
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    if (t.dtype !== 'F32') throw new Error(`weights: tensor ${name} is ${t.dtype}, expected F32`);
    const [lo, hi] = t.data_offsets;
    // copy: the blob's data need not be 4-byte aligned
    const data = new Float32Array(bytes.slice(8 + n + lo, 8 + n + hi).buffer);
    if (data.length !== t.shape.reduce((a, b) => a * b, 1)) throw new Error(`weights: tensor ${name} has ${data.length} values for shape [${t.shape}]`);
    out.set(name, { shape: t.shape, data });
  }
  return out;
}

/** The MLP's layers in order: [W (V x H), bias (H)], sigmoid on all but the last. */
function mlp(weights: Map<string, { shape: number[]; data: Float32Array }>): { W: Float32Array; b: Float32Array; V: number; H: number }[] {
  const layers: { W: Float32Array; b: Float32Array; V: number; H: number }[] = [];
  for (let k = 0; weights.has(`rbm${k}.W`); k++) {
    const W = weights.get(`rbm${k}.W`)!;
    const b = weights.get(`rbm${k}.hbias`);
    if (!b) throw new Error(`weights: rbm${k}.hbias missing`);
    layers.push({ W: W.data, b: b.data, V: W.shape[0]!, H: W.shape[1]! });
  }
  const W = weights.get('out.W');
  const b = weights.get('out.b');
  if (!W || !b) throw new Error('weights: out.W or out.b missing');
  layers.push({ W: W.data, b: b.data, V: W.shape[0]!, H: W.shape[1]! });
  return layers;
}

/** Fraction of the test set the weights classify wrongly. */
export function testError(weightsBlob: Uint8Array, test: TestSet, batch = 100): number {
  const layers = mlp(parseWeights(weightsBlob));
  if (layers[0]!.V !== test.dim) throw new Error(`weights take ${layers[0]!.V} inputs, the test images have ${test.dim} pixels`);
  let wrong = 0;
  for (let lo = 0; lo < test.count; lo += batch) {
    const B = Math.min(batch, test.count - lo);
    let x = new Float32Array(B * test.dim);
    for (let i = 0; i < x.length; i++) x[i] = test.images[lo * test.dim + i]! / 255;
    layers.forEach((L, li) => {
      const z = new Float32Array(B * L.H);
      for (let r = 0; r < B; r++) {
        const zr = z.subarray(r * L.H, (r + 1) * L.H);
        zr.set(L.b);
        for (let v = 0; v < L.V; v++) {
          const a = x[r * L.V + v]!;
          if (a === 0) continue; // MNIST pixels are mostly 0
          const w = L.W.subarray(v * L.H, (v + 1) * L.H);
          for (let h = 0; h < L.H; h++) zr[h]! += a * w[h]!;
        }
      }
      if (li < layers.length - 1) for (let i = 0; i < z.length; i++) z[i] = 1 / (1 + Math.exp(-z[i]!));
      x = z;
    });
    const K = layers[layers.length - 1]!.H;
    for (let r = 0; r < B; r++) {
      let best = 0;
      for (let k = 1; k < K; k++) if (x[r * K + k]! > x[r * K + best]!) best = k;
      if (best !== test.labels[lo + r]) wrong++;
    }
  }
  return wrong / test.count;
}

function readIdx(dir: string, base: string): Uint8Array {
  for (const name of [base, `${base}.gz`]) {
    const p = join(dir, name);
    if (existsSync(p)) {
      const raw = readFileSync(p);
      return new Uint8Array(name.endsWith('.gz') ? gunzipSync(raw) : raw);
    }
  }
  throw new Error(`${dir}: neither ${base} nor ${base}.gz (set TESSERA_MNIST_DIR to a folder of MNIST IDX files)`);
}

/** The first `limit` (0: all) MNIST test examples from a folder of IDX files. */
export function loadTestSet(dir: string, limit: number): TestSet {
  const img = readIdx(dir, 't10k-images-idx3-ubyte');
  const lab = readIdx(dir, 't10k-labels-idx1-ubyte');
  const di = new DataView(img.buffer, img.byteOffset, img.byteLength);
  const dl = new DataView(lab.buffer, lab.byteOffset, lab.byteLength);
  if (di.getUint32(0) !== 0x803 || dl.getUint32(0) !== 0x801) throw new Error(`${dir}: test files have the wrong IDX magic numbers`);
  const all = di.getUint32(4);
  if (dl.getUint32(4) !== all) throw new Error(`${dir}: ${all} test images but ${dl.getUint32(4)} labels`);
  const dim = di.getUint32(8) * di.getUint32(12);
  const count = limit > 0 ? Math.min(limit, all) : all;
  return { count, dim, images: img.subarray(16, 16 + count * dim), labels: lab.subarray(8, 8 + count) };
}

/** Where the coordinator finds MNIST too: $TESSERA_MNIST_DIR, else ../shared/datasets/mnist beside the repository. */
export function mnistDir(repoRoot: string): string | null {
  const shared = join(repoRoot, '..', 'shared', 'datasets', 'mnist');
  const shared2 = join(repoRoot, '..', '..', 'shared', 'datasets', 'mnist');
  return process.env.TESSERA_MNIST_DIR ?? (existsSync(shared) ? shared : existsSync(shared2) ? shared2 : null);
}

/** The `version` in a weights blob's metadata (-1 when absent). */
export function weightsVersion(bytes: Uint8Array): number {
  const n = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as { __metadata__?: { version?: string } };
  const v = Number(header.__metadata__?.version);
  return Number.isFinite(v) ? v : -1;
}
