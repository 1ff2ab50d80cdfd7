/**
 * The `webgpu` compute backend: CD-1 and backprop tasks as WGSL kernels.
 *
 * Shape legend: B = examples in the task, V = visible units, H = hidden units,
 * K = classes; nIn x nOut for a dense layer. Row-major f32 throughout.
 *
 * Residency: weights stay on the device between tasks, keyed by the
 * Float32Array that holds them and the request's `weightsVersion` (reused only
 * when both match; without a version they are re-sent every task, since the
 * optimizer updates arrays in place). Inputs, activations, gradients, the
 * uniforms and the readback buffer come from the Gpu's buffer pool and go
 * back to it after each task, so the tasks of a weights version reuse the same
 * buffers (and their cached bind groups) instead of creating them.
 *
 * One task, or one bundle of tasks (cd1Bundle / backpropBundle: the tasks'
 * examples are concatenated into one batch, since every sum is over
 * examples), is one command buffer: one submit and one readback.
 *
 * Dispatches per task (L layers of an MLP, k frozen layers under an RBM):
 *   backprop: L - 1 forward (bias + sigmoid fused), 1 output layer (logits,
 *             softmax, delta, loss and hits fused: dense_softmax.wgsl), L dW
 *             products with the bias gradient as their column sums (CSUM),
 *             L - 1 backward deltas (sigmoid derivative fused) = 3L - 1
 *             (before: 4L, with the logits, softmax and every db on their own)
 *   cd1:      k forward, h0 (bias + sigmoid + Bernoulli sample fused), v1, h1,
 *             2 dW products (the second accumulates, and both give dc as
 *             column sums), 1 colsum for db and the reconstruction error = k + 6
 *             (before: k + 7)
 */
import type {
  BackpropRequest,
  BackpropSums,
  Cd1Request,
  Cd1Sums,
  ComputeBackend,
  DenseLayer,
} from '../backend.ts';
import { Gpu, GpuError, type GpuOptions, type Recording } from './gpu.ts';
import { colsum, CPU_TUNING, DENSE_SOFTMAX_KMAX, denseSoftmax, type Dummies, GPU_TUNING, matmul, type MatmulTuning, softmaxXent } from './kernels.ts';

/** An optional cache key for the weights a request carries (e.g. the coordinator's weights version). */
export interface Versioned {
  readonly weightsVersion?: string | number;
}

export interface WebGpuBackendOptions extends GpuOptions {
  /** Matmul tunables; by default GPU_TUNING, or CPU_TUNING on CPU emulation. */
  readonly matmul?: MatmulTuning;
  /** Fill every scratch buffer with NaN before use, so an element no kernel writes shows up (tests). */
  readonly poison?: boolean;
}

/** Counters for tests and benchmarks. */
export interface WebGpuStats {
  /** weight or bias tensors sent to the device */
  weightUploads: number;
  /** tasks or bundles submitted (each is one command buffer and one readback) */
  submits: number;
  /** compute dispatches of those submits */
  dispatches: number;
}

export interface WebGpuBackend extends ComputeBackend {
  readonly kind: 'webgpu';
  readonly gpu: Gpu;
  readonly tuning: MatmulTuning;
  readonly stats: WebGpuStats;
  cd1(req: Cd1Request & Versioned): Promise<Cd1Sums>;
  backprop(req: BackpropRequest & Versioned): Promise<BackpropSums>;
  cd1Bundle(reqs: readonly (Cd1Request & Versioned)[]): Promise<Cd1Sums>;
  backpropBundle(reqs: readonly (BackpropRequest & Versioned)[]): Promise<BackpropSums>;
  predict(layers: readonly DenseLayer[], x: Float32Array, batch: number, opts?: Versioned): Promise<Float32Array>;
  propagate(layers: readonly DenseLayer[], x: Float32Array, batch: number, opts?: Versioned): Promise<Float32Array>;
}

export async function createWebGpuBackend(opts: WebGpuBackendOptions = {}): Promise<WebGpuBackend> {
  const gpu = await Gpu.create(opts);
  return new WebGpuBackendImpl(gpu, opts.matmul ?? (gpu.adapter.cpuEmulated ? CPU_TUNING : GPU_TUNING), opts.poison ?? false);
}

interface Resident {
  readonly buf: GPUBuffer;
  version: string | number | undefined;
}

class WebGpuBackendImpl implements WebGpuBackend {
  readonly kind = 'webgpu' as const;
  readonly adapter: string;
  readonly stats: WebGpuStats = { weightUploads: 0, submits: 0, dispatches: 0 };
  private readonly resident = new WeakMap<Float32Array, Resident>();
  /** tensors already sent during a recording, so a task never sends one twice */
  private readonly sentThisTask = new WeakMap<Recording, Set<Float32Array>>();
  private readonly dummies: Dummies;

  constructor(
    readonly gpu: Gpu,
    readonly tuning: MatmulTuning,
    private readonly poison: boolean,
  ) {
    this.adapter = `${gpu.adapter.description} (WebGPU)`;
    this.dummies = { rw: gpu.scratch('dummy/rw', 4), ro: gpu.scratch('dummy/ro', 4) };
  }

  /** The device copy of a weight tensor, re-sent unless array and version both match. */
  private weights(rec: Recording, label: string, data: Float32Array, version: string | number | undefined): GPUBuffer {
    let sent = this.sentThisTask.get(rec);
    if (!sent) this.sentThisTask.set(rec, (sent = new Set()));
    const r = this.resident.get(data);
    if (r && ((version !== undefined && r.version === version) || sent.has(data))) return r.buf;
    sent.add(data);
    this.stats.weightUploads++;
    if (r) {
      this.gpu.rewrite(r.buf, data);
      r.version = version;
      return r.buf;
    }
    const buf = this.gpu.upload(label, data);
    this.resident.set(data, { buf, version });
    return buf;
  }

  private scratch(rec: Recording, label: string, floats: number): GPUBuffer {
    return rec.scratch(label, floats, this.poison);
  }

  /** Records sigmoid layers from x (B x layers[0].nIn); returns every activation, input first. */
  private forward(rec: Recording, layers: readonly DenseLayer[], x: GPUBuffer, B: number, version: Versioned['weightsVersion'], sigmoidLast: boolean): GPUBuffer[] {
    const acts = [x];
    layers.forEach((l, i) => {
      const last = i === layers.length - 1;
      const out = this.scratch(rec, last && !sigmoidLast ? 'logits' : `a${i + 1}`, B * l.nOut);
      matmul(rec, this.tuning, {
        form: 'nn',
        epi: last && !sigmoidLast ? 'bias' : 'biasSigmoid',
        C: out,
        A: acts[i]!,
        B: this.weights(rec, `layer${i}.W(${l.nIn}x${l.nOut})`, l.W, version),
        aux: this.weights(rec, `layer${i}.b(${l.nOut})`, l.b, version),
        M: B,
        K: l.nIn,
        N: l.nOut,
      }, this.dummies);
      acts.push(out);
    });
    return acts;
  }

  async cd1(req: Cd1Request & Versioned): Promise<Cd1Sums> {
    return this.cd1Rows(req, req.x, req.exampleIds, req.batch);
  }

  async cd1Bundle(reqs: readonly (Cd1Request & Versioned)[]): Promise<Cd1Sums> {
    if (!reqs.length) throw new GpuError('cd1Bundle: no requests');
    const r0 = reqs[0]!;
    reqs.forEach((r, i) => {
      const same = r.rbm.W === r0.rbm.W && r.rbm.b === r0.rbm.b && r.rbm.c === r0.rbm.c && sameLayers(r.lower, r0.lower);
      if (!same) throw new GpuError(`cd1Bundle: request ${i} has other weights than request 0 (a bundle is tasks of one weights version)`);
      if (r.rng.seed !== r0.rng.seed || r.rng.iteration !== r0.rng.iteration) throw new GpuError(`cd1Bundle: request ${i} draws with seed/iteration ${r.rng.seed}/${r.rng.iteration}, request 0 with ${r0.rng.seed}/${r0.rng.iteration}`);
      if (r.weightsVersion !== r0.weightsVersion) throw new GpuError(`cd1Bundle: request ${i} is weights version ${r.weightsVersion}, request 0 ${r0.weightsVersion}`);
    });
    const B = reqs.reduce((s, r) => s + r.batch, 0);
    return this.cd1Rows(r0, concat(reqs.map((r) => r.x), Float32Array), concat(reqs.map((r) => r.exampleIds), Uint32Array), B, reqs);
  }

  /** CD-1 on rows x (B of them, with their example ids) under req's weights; `all` are checked as requests when given. */
  private async cd1Rows(req: Cd1Request & Versioned, xAll: Float32Array, idsAll: Uint32Array, B: number, all: readonly Cd1Request[] = [req]): Promise<Cd1Sums> {
    const { rbm, lower } = req;
    for (const r of all) this.checkCd1(r);
    const { V, H } = rbm;
    if (B === 0) return { dW: new Float32Array(V * H), db: new Float32Array(V), dc: new Float32Array(H), reconError: 0, count: 0 };
    const rec = this.gpu.record(all.length > 1 ? `cd1x${all.length}` : 'cd1');
    const v = req.weightsVersion;
    const x = rec.input('x', xAll);
    const v0 = this.forward(rec, lower, x, B, v, true).pop()!;
    const W = this.weights(rec, `rbm.W(${V}x${H})`, rbm.W, v);
    const b = this.weights(rec, `rbm.b(${V})`, rbm.b, v);
    const c = this.weights(rec, `rbm.c(${H})`, rbm.c, v);
    const ids = rec.input('exampleIds', idsAll);
    const h0 = this.scratch(rec, 'h0', B * H);
    const s0 = this.scratch(rec, 's0', B * H);
    const v1 = this.scratch(rec, 'v1', B * V);
    const h1 = this.scratch(rec, 'h1', B * H);
    const dW = this.scratch(rec, 'dW', V * H);
    const db = this.scratch(rec, 'db', V);
    const sq = this.scratch(rec, 'sq', V);
    const dc = this.scratch(rec, 'dc', H);
    const t = this.tuning;
    const d = this.dummies;
    // h0 = sigmoid(v0 W + c), s0 ~ Bernoulli(h0)
    matmul(rec, t, { form: 'nn', epi: 'biasSigmoidSample', C: h0, S: s0, A: v0, B: W, aux: c, ids, M: B, K: V, N: H, seed: req.rng.seed, iteration: req.rng.iteration }, d);
    // v1 = sigmoid(s0 W^T + b)
    matmul(rec, t, { form: 'nt', epi: 'biasSigmoid', C: v1, A: s0, B: W, aux: b, M: B, K: H, N: V }, d);
    // h1 = sigmoid(v1 W + c)
    matmul(rec, t, { form: 'nn', epi: 'biasSigmoid', C: h1, A: v1, B: W, aux: c, M: B, K: V, N: H }, d);
    // dW = v0^T h0 - v1^T h1, and as their column sums dc = sum(h0) - sum(h1)
    matmul(rec, t, { form: 'tn', epi: 'axpby', C: dW, colsum: dc, A: v0, B: h0, M: V, K: B, N: H }, d);
    matmul(rec, t, { form: 'tn', epi: 'axpby', C: dW, colsum: dc, A: v1, B: h1, M: V, K: B, N: H, alpha: -1, beta: 1 }, d);
    // db = sum(v0 - v1), reconstruction error = sum((v0 - v1)^2)
    colsum(rec, db, v0, B, V, d, v1, sq);
    const [dWh, dbh, dch, sqh] = await this.finish(rec, [[dW, V * H], [db, V], [dc, H], [sq, V]]);
    let reconError = 0;
    for (const s of sqh!) reconError += s;
    return { dW: dWh!, db: dbh!, dc: dch!, reconError, count: B };
  }

  private checkCd1(req: Cd1Request): void {
    const { rbm, batch: B, lower } = req;
    const { V, H } = rbm;
    checkLayers('cd1', lower, req.x, B);
    if (lower.length && lower[lower.length - 1]!.nOut !== V) throw new GpuError(`cd1: the last lower layer gives ${lower[lower.length - 1]!.nOut} units, the RBM has V = ${V}`);
    if (!lower.length && req.x.length !== B * V) throw new GpuError(`cd1: x has ${req.x.length} values, expected B x V = ${B} x ${V}`);
    if (rbm.W.length !== V * H || rbm.b.length !== V || rbm.c.length !== H) {
      throw new GpuError(`cd1: RBM ${V}x${H} needs W ${V * H}, b ${V}, c ${H} values; got ${rbm.W.length}, ${rbm.b.length}, ${rbm.c.length}`);
    }
    if (req.exampleIds.length !== B) throw new GpuError(`cd1: ${req.exampleIds.length} example ids for a batch of ${B}`);
  }

  async backprop(req: BackpropRequest & Versioned): Promise<BackpropSums> {
    return this.backpropRows(req, req.x, req.labels, req.batch);
  }

  async backpropBundle(reqs: readonly (BackpropRequest & Versioned)[]): Promise<BackpropSums> {
    if (!reqs.length) throw new GpuError('backpropBundle: no requests');
    const r0 = reqs[0]!;
    reqs.forEach((r, i) => {
      if (!sameLayers(r.layers, r0.layers)) throw new GpuError(`backpropBundle: request ${i} has other weights than request 0 (a bundle is tasks of one weights version)`);
      if (r.weightsVersion !== r0.weightsVersion) throw new GpuError(`backpropBundle: request ${i} is weights version ${r.weightsVersion}, request 0 ${r0.weightsVersion}`);
    });
    const B = reqs.reduce((s, r) => s + r.batch, 0);
    return this.backpropRows(r0, concat(reqs.map((r) => r.x), Float32Array), concat(reqs.map((r) => r.labels), Uint8Array), B, reqs);
  }

  private checkBackprop(req: BackpropRequest): void {
    const { layers, batch: B } = req;
    checkLayers('backprop', layers, req.x, B);
    if (!layers.length) throw new GpuError('backprop: no layers');
    if (req.labels.length !== B) throw new GpuError(`backprop: ${req.labels.length} labels for a batch of ${B}`);
    const Kc = layers[layers.length - 1]!.nOut;
    for (let i = 0; i < B; i++) if (req.labels[i]! >= Kc) throw new GpuError(`backprop: label ${req.labels[i]} of row ${i} is outside [0, ${Kc})`);
  }

  /** Backprop on rows x (B of them) with their labels under req's layers; `all` are checked as requests. */
  private async backpropRows(req: BackpropRequest & Versioned, xAll: Float32Array, labelsAll: Uint8Array, B: number, all: readonly BackpropRequest[] = [req]): Promise<BackpropSums> {
    for (const r of all) this.checkBackprop(r);
    const { layers } = req;
    const Kc = layers[layers.length - 1]!.nOut;
    if (B === 0) {
      return { dW: layers.map((l) => new Float32Array(l.nIn * l.nOut)), db: layers.map((l) => new Float32Array(l.nOut)), loss: 0, correct: 0, count: 0 };
    }
    const rec = this.gpu.record(all.length > 1 ? `backpropx${all.length}` : 'backprop');
    const v = req.weightsVersion;
    const t = this.tuning;
    const d = this.dummies;
    const x = rec.input('x', xAll);
    const labels = rec.input('labels', Uint32Array.from(labelsAll));
    const top = layers.length - 1;
    const out = layers[top]!;
    let delta = this.scratch(rec, `delta${top}`, B * Kc);
    const stats = this.scratch(rec, 'stats', B * 2);
    let acts: GPUBuffer[];
    if (Kc <= DENSE_SOFTMAX_KMAX) {
      // hidden layers, then logits + softmax + delta + loss + hits in one dispatch
      acts = this.forward(rec, layers.slice(0, top), x, B, v, true);
      const W = this.weights(rec, `layer${top}.W(${out.nIn}x${out.nOut})`, out.W, v);
      const bias = this.weights(rec, `layer${top}.b(${out.nOut})`, out.b, v);
      denseSoftmax(rec, { Pr: delta, stats, X: acts[top]!, W, bias, labels, M: B, nIn: out.nIn, K: Kc }, d);
    } else {
      acts = this.forward(rec, layers, x, B, v, false);
      softmaxXent(rec, delta, acts.pop()!, B, Kc, d, labels, stats);
    }
    const dWs: GPUBuffer[] = [];
    const dbs: GPUBuffer[] = [];
    for (let i = top; i >= 0; i--) {
      const l = layers[i]!;
      const dW = this.scratch(rec, `dW${i}`, l.nIn * l.nOut);
      const db = this.scratch(rec, `db${i}`, l.nOut);
      // dW_i = a_i^T delta_i, and as its column sums db_i = sum over rows of delta_i
      matmul(rec, t, { form: 'tn', epi: 'axpby', C: dW, colsum: db, A: acts[i]!, B: delta, M: l.nIn, K: B, N: l.nOut }, d);
      dWs[i] = dW;
      dbs[i] = db;
      if (i > 0) {
        // delta_{i-1} = (delta_i W_i^T) * a_i (1 - a_i)
        const prev = this.scratch(rec, `delta${i - 1}`, B * l.nIn);
        matmul(rec, t, { form: 'nt', epi: 'sigmoidDelta', C: prev, A: delta, B: this.weights(rec, '', l.W, v), aux: acts[i]!, M: B, K: l.nOut, N: l.nIn }, d);
        delta = prev;
      }
    }
    const res = await this.finish(rec, [
      ...layers.map((l, i) => [dWs[i]!, l.nIn * l.nOut] as const),
      ...layers.map((l, i) => [dbs[i]!, l.nOut] as const),
      [stats, B * 2],
    ]);
    const st = res.pop()!;
    let loss = 0;
    let correct = 0;
    for (let i = 0; i < B; i++) {
      loss += st[2 * i]!;
      correct += st[2 * i + 1]!;
    }
    return { dW: res.slice(0, layers.length), db: res.slice(layers.length), loss, correct, count: B };
  }

  async predict(layers: readonly DenseLayer[], x: Float32Array, batch: number, opts: Versioned = {}): Promise<Float32Array> {
    checkLayers('predict', layers, x, batch);
    if (!layers.length) throw new GpuError('predict: no layers');
    const K = layers[layers.length - 1]!.nOut;
    if (batch === 0) return new Float32Array(0);
    const rec = this.gpu.record('predict');
    const xb = rec.input('x', x);
    const probs = this.scratch(rec, 'probs', batch * K);
    const v = opts.weightsVersion;
    const top = layers.length - 1;
    if (K <= DENSE_SOFTMAX_KMAX) {
      const out = layers[top]!;
      const X = this.forward(rec, layers.slice(0, top), xb, batch, v, true).pop()!;
      const W = this.weights(rec, `layer${top}.W(${out.nIn}x${out.nOut})`, out.W, v);
      const bias = this.weights(rec, `layer${top}.b(${out.nOut})`, out.b, v);
      denseSoftmax(rec, { Pr: probs, X, W, bias, M: batch, nIn: out.nIn, K }, this.dummies);
    } else {
      const logits = this.forward(rec, layers, xb, batch, v, false).pop()!;
      softmaxXent(rec, probs, logits, batch, K, this.dummies);
    }
    return (await this.finish(rec, [[probs, batch * K]]))[0]!;
  }

  async propagate(layers: readonly DenseLayer[], x: Float32Array, batch: number, opts: Versioned = {}): Promise<Float32Array> {
    checkLayers('propagate', layers, x, batch);
    if (!layers.length) return x.slice();
    const n = layers[layers.length - 1]!.nOut;
    if (batch === 0) return new Float32Array(0);
    const rec = this.gpu.record('propagate');
    const xb = rec.input('x', x);
    const top = this.forward(rec, layers, xb, batch, opts.weightsVersion, true).pop()!;
    return (await this.finish(rec, [[top, batch * n]]))[0]!;
  }

  private finish(rec: Recording, outputs: readonly (readonly [GPUBuffer, number])[]): Promise<Float32Array[]> {
    this.stats.submits++;
    this.stats.dispatches += rec.size;
    return rec.finish(outputs);
  }

  dispose(): void {
    this.gpu.destroy();
  }
}

function checkLayers(what: string, layers: readonly DenseLayer[], x: Float32Array, B: number): void {
  if (!Number.isInteger(B) || B < 0) throw new GpuError(`${what}: batch ${B} is not a non-negative integer`);
  layers.forEach((l, i) => {
    if (l.W.length !== l.nIn * l.nOut || l.b.length !== l.nOut) {
      throw new GpuError(`${what}: layer ${i} (${l.nIn}x${l.nOut}) needs W ${l.nIn * l.nOut} and b ${l.nOut} values; got ${l.W.length} and ${l.b.length}`);
    }
    if (i > 0 && layers[i - 1]!.nOut !== l.nIn) throw new GpuError(`${what}: layer ${i} takes ${l.nIn} inputs but layer ${i - 1} gives ${layers[i - 1]!.nOut}`);
  });
  if (layers.length && x.length !== B * layers[0]!.nIn) throw new GpuError(`${what}: x has ${x.length} values, expected ${B} x ${layers[0]!.nIn}`);
}

/** The same layers: the same weight and bias arrays in the same order. */
function sameLayers(a: readonly DenseLayer[], b: readonly DenseLayer[]): boolean {
  return a.length === b.length && a.every((l, i) => l.W === b[i]!.W && l.b === b[i]!.b && l.nIn === b[i]!.nIn && l.nOut === b[i]!.nOut);
}

/** The arrays one after another. */
function concat<T extends Float32Array | Uint32Array | Uint8Array>(parts: readonly T[], Ctor: { new (n: number): T }): T {
  if (parts.length === 1) return parts[0]!;
  const out = new Ctor(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p as never, at);
    at += p.length;
  }
  return out;
}
