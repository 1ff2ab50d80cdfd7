/**
 * The CPU compute backend: CD-1 and backprop composed from the kernels in
 * kernels.ts, with the matmul supplied by the engine (WebAssembly SIMD or the
 * plain TypeScript one) and every buffer taken from the engine's workspace.
 *
 * Shape legend: B = examples in the task, V = visible units, H = hidden
 * units, K = classes; layer l maps nIn -> nOut. Row-major float32 throughout.
 */
import type { BackpropRequest, BackpropSums, Cd1Request, Cd1Sums, ComputeBackend, DenseLayer } from '../backend.ts';
import {
  addBias,
  biasSigmoid,
  columnDiffSums,
  columnSums,
  negate,
  sampleBernoulli,
  sigmoidBackprop,
  softmax,
  softmaxCrossEntropy,
  type MatmulForm,
} from './kernels.ts';
import type { Workspace } from './workspace.ts';

export type MatmulFn = (form: MatmulForm, A: Float32Array, B: Float32Array, C: Float32Array, M: number, K: number, N: number) => void;

/** What runs the arithmetic: a matmul and the memory its operands must live in. */
export interface CpuEngine {
  /** For people, e.g. "WebAssembly SIMD, 1 thread". */
  readonly name: string;
  /** Operands must be views from `workspace`. */
  readonly matmul: MatmulFn;
  readonly workspace: Workspace;
  /**
   * Row-wise kernels the engine runs its own way (the threaded engine splits
   * them across its threads); each must equal the kernels.ts function of the
   * same name. Missing ones are the kernels.ts functions.
   */
  readonly kernels?: Partial<RowKernels>;
  /** Ends what the engine started (the threaded engine's helper threads). */
  dispose?(): void;
}

/** The row-wise kernels an engine may supply. */
export interface RowKernels {
  readonly biasSigmoid: typeof biasSigmoid;
  readonly sampleBernoulli: typeof sampleBernoulli;
  readonly sigmoidBackprop: typeof sigmoidBackprop;
}

export class CpuBackend implements ComputeBackend {
  readonly kind = 'cpu' as const;
  readonly adapter: string;
  private readonly k: RowKernels;

  constructor(private readonly engine: CpuEngine) {
    this.adapter = engine.name;
    this.k = { biasSigmoid, sampleBernoulli, sigmoidBackprop, ...engine.kernels };
  }

  async propagate(layers: readonly DenseLayer[], x: Float32Array, batch: number): Promise<Float32Array> {
    return this.forward(layers, x, batch, false);
  }

  async predict(layers: readonly DenseLayer[], x: Float32Array, batch: number): Promise<Float32Array> {
    return this.forward(layers, x, batch, true);
  }

  /** Sigmoid layers, the last one softmax when `softmaxOut`; returns a fresh B x nOut array. */
  private forward(layers: readonly DenseLayer[], x: Float32Array, B: number, softmaxOut: boolean): Float32Array {
    checkChain(layers, x, B);
    if (layers.length === 0) return x.slice();
    const { matmul, workspace } = this.engine;
    const L = layers.length;
    const sizes = [B * layers[0]!.nIn];
    for (const l of layers) sizes.push(l.W.length, l.b.length, B * l.nOut);
    const ws = workspace.reserve(sizes);
    let a = ws[0]!;
    a.set(x.subarray(0, B * layers[0]!.nIn));
    for (let l = 0; l < L; l++) {
      const { nIn, nOut } = layers[l]!;
      const W = ws[1 + 3 * l]!;
      const b = ws[2 + 3 * l]!;
      const z = ws[3 + 3 * l]!;
      W.set(layers[l]!.W);
      b.set(layers[l]!.b);
      matmul('nn', a, W, z, B, nIn, nOut);
      if (softmaxOut && l === L - 1) {
        addBias(z, b, z, B, nOut);
        softmax(z, z, B, nOut);
      } else this.k.biasSigmoid(z, b, z, B, nOut);
      a = z;
    }
    return a.slice();
  }

  async cd1(req: Cd1Request): Promise<Cd1Sums> {
    const { lower, rbm, x, batch: B, exampleIds, rng } = req;
    const { V, H } = rbm;
    checkChain(lower, x, B);
    const nIn0 = lower.length ? lower[0]!.nIn : V;
    if (lower.length && lower[lower.length - 1]!.nOut !== V) {
      throw new RangeError(`the lower layers end with ${lower[lower.length - 1]!.nOut} units, the RBM has V = ${V}`);
    }
    if (x.length !== B * nIn0) throw new RangeError(`x has ${x.length} values, expected B x ${nIn0} = ${B * nIn0}`);
    if (rbm.W.length !== V * H || rbm.b.length !== V || rbm.c.length !== H) {
      throw new RangeError(`RBM ${V}x${H} has W ${rbm.W.length}, b ${rbm.b.length}, c ${rbm.c.length} values`);
    }
    if (exampleIds.length !== B) throw new RangeError(`${exampleIds.length} example ids for a batch of ${B}`);
    const { matmul, workspace } = this.engine;

    // Buffers: the input, the frozen lower layers (W, b, output), then the RBM.
    // v0 and v1 are the two halves of vv (2B x V), h0 and -h1 of hh (2B x H),
    // so dW = v0ᵀh0 - v1ᵀh1 = vvᵀ hh is one matmul over 2B rows.
    const sizes = [B * nIn0];
    for (const l of lower) sizes.push(l.W.length, l.b.length, B * l.nOut);
    const base = sizes.length;
    sizes.push(V * H, V, H, 2 * B * V, 2 * B * H, B * H, V * H, V, H);
    const ws = workspace.reserve(sizes);
    const [W, b, c, vv, hh, s0, dW, db, dc] = ws.slice(base) as [
      Float32Array, Float32Array, Float32Array, Float32Array, Float32Array, Float32Array, Float32Array, Float32Array, Float32Array,
    ];
    const v0 = vv.subarray(0, B * V);
    const v1 = vv.subarray(B * V);
    const h0 = hh.subarray(0, B * H);
    const h1 = hh.subarray(B * H);

    // v0: x propagated up through the lower layers (probabilities, no sampling).
    let a = ws[0]!;
    a.set(x);
    for (let l = 0; l < lower.length; l++) {
      const { nIn, nOut } = lower[l]!;
      const Wl = ws[1 + 3 * l]!;
      const bl = ws[2 + 3 * l]!;
      const z = l === lower.length - 1 ? v0 : ws[3 + 3 * l]!;
      Wl.set(lower[l]!.W);
      bl.set(lower[l]!.b);
      matmul('nn', a, Wl, z, B, nIn, nOut);
      this.k.biasSigmoid(z, bl, z, B, nOut);
      a = z;
    }
    if (lower.length === 0) v0.set(x);

    W.set(rbm.W);
    b.set(rbm.b);
    c.set(rbm.c);
    // h0 = sigmoid(v0 W + c), s0 ~ Bernoulli(h0)
    matmul('nn', v0, W, h0, B, V, H);
    this.k.biasSigmoid(h0, c, h0, B, H);
    this.k.sampleBernoulli(h0, s0, B, H, rng.seed, rng.iteration, exampleIds);
    // v1 = sigmoid(s0 Wᵀ + b), h1 = sigmoid(v1 W + c)
    matmul('nt', s0, W, v1, B, H, V);
    this.k.biasSigmoid(v1, b, v1, B, V);
    matmul('nn', v1, W, h1, B, V, H);
    this.k.biasSigmoid(h1, c, h1, B, H);
    // dc = sum(h0 - h1), db = sum(v0 - v1), reconError = sum((v0 - v1)^2), dW = v0ᵀh0 - v1ᵀh1
    columnDiffSums(h0, h1, B, H, dc);
    const reconError = columnDiffSums(v0, v1, B, V, db);
    negate(h1, h1, B * H);
    matmul('tn', vv, hh, dW, V, 2 * B, H);
    return { dW: dW.slice(), db: db.slice(), dc: dc.slice(), reconError, count: B };
  }

  async backprop(req: BackpropRequest): Promise<BackpropSums> {
    const { layers, x, labels, batch: B } = req;
    checkChain(layers, x, B);
    if (layers.length === 0) throw new RangeError('backprop needs at least the output layer');
    if (labels.length !== B) throw new RangeError(`${labels.length} labels for a batch of ${B}`);
    const { matmul, workspace } = this.engine;
    const L = layers.length;
    const nIn0 = layers[0]!.nIn;
    let maxOut = 0;
    for (const l of layers) maxOut = Math.max(maxOut, l.nOut);

    // Buffers: the input a[0], then per layer W, b, activation a[l+1], dW, db;
    // two delta buffers of B x maxOut, used alternately going down.
    const sizes = [B * nIn0];
    for (const l of layers) sizes.push(l.W.length, l.b.length, B * l.nOut, l.W.length, l.b.length);
    sizes.push(B * maxOut, B * maxOut);
    const ws = workspace.reserve(sizes);
    const act = (l: number): Float32Array => (l === 0 ? ws[0]! : ws[3 + 5 * (l - 1)]!); // a[l], input of layer l
    const W = (l: number): Float32Array => ws[1 + 5 * l]!;
    const bias = (l: number): Float32Array => ws[2 + 5 * l]!;
    const dW = (l: number): Float32Array => ws[4 + 5 * l]!;
    const db = (l: number): Float32Array => ws[5 + 5 * l]!;
    const deltas = [ws[ws.length - 2]!, ws[ws.length - 1]!];

    // Forward: a[l+1] = sigmoid(a[l] W + b) for hidden layers; the output keeps its logits.
    act(0).set(x);
    for (let l = 0; l < L; l++) {
      const { nIn, nOut } = layers[l]!;
      W(l).set(layers[l]!.W);
      bias(l).set(layers[l]!.b);
      const z = act(l + 1);
      matmul('nn', act(l), W(l), z, B, nIn, nOut);
      if (l < L - 1) this.k.biasSigmoid(z, bias(l), z, B, nOut);
      else addBias(z, bias(l), z, B, nOut);
    }

    // Backward: D = softmax - onehot at the output; dW = a[l]ᵀ D, db = colsum(D),
    // and below, D' = (D Wᵀ) ⊙ a(1 - a).
    const K = layers[L - 1]!.nOut;
    let D = deltas[0]!.subarray(0, B * K);
    const { loss, correct } = softmaxCrossEntropy(act(L), labels, D, B, K);
    for (let l = L - 1; l >= 0; l--) {
      const { nIn, nOut } = layers[l]!;
      matmul('tn', act(l), D, dW(l), nIn, B, nOut);
      columnSums(D, B, nOut, db(l));
      if (l === 0) break;
      const G = deltas[(L - l) % 2]!.subarray(0, B * nIn);
      matmul('nt', D, W(l), G, B, nOut, nIn);
      this.k.sigmoidBackprop(G, act(l), G, B, nIn);
      D = G;
    }
    const dWs: Float32Array[] = [];
    const dbs: Float32Array[] = [];
    for (let l = 0; l < L; l++) {
      dWs.push(dW(l).slice());
      dbs.push(db(l).slice());
    }
    return { dW: dWs, db: dbs, loss, correct, count: B };
  }

  dispose(): void {
    this.engine.dispose?.();
  }
}

/** Checks that the layers chain and their tensors and x have the sizes they claim. */
function checkChain(layers: readonly DenseLayer[], x: Float32Array, B: number): void {
  if (!Number.isInteger(B) || B < 0) throw new RangeError(`batch ${B} is not a count of examples`);
  for (let l = 0; l < layers.length; l++) {
    const { nIn, nOut, W, b } = layers[l]!;
    if (W.length !== nIn * nOut) throw new RangeError(`layer ${l} is ${nIn}x${nOut} but W has ${W.length} values`);
    if (b.length !== nOut) throw new RangeError(`layer ${l} has ${nOut} outputs but b has ${b.length} values`);
    if (l > 0 && layers[l - 1]!.nOut !== nIn) {
      throw new RangeError(`layer ${l - 1} has ${layers[l - 1]!.nOut} outputs, layer ${l} expects ${nIn} inputs`);
    }
  }
  if (layers.length && x.length !== B * layers[0]!.nIn) {
    throw new RangeError(`x has ${x.length} values, expected B x nIn = ${B} x ${layers[0]!.nIn} = ${B * layers[0]!.nIn}`);
  }
}
