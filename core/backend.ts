/**
 * The compute backend interface: what a worker needs to turn (weights,
 * examples, seed) into gradient sums. Two implementations give the same
 * numbers up to float rounding: `cpu` (plain TypeScript + WebAssembly SIMD,
 * the reference and the fallback) and `webgpu` (WGSL compute shaders).
 *
 * Shape legend: B = examples in the task, V = visible units, H = hidden
 * units, K = classes. Every matrix is row-major float32.
 */

/** A fully connected layer: y = act(x W + b), W is nIn x nOut. */
export interface DenseLayer {
  readonly nIn: number;
  readonly nOut: number;
  /** nIn x nOut */
  readonly W: Float32Array;
  /** nOut */
  readonly b: Float32Array;
}

/** A Bernoulli-Bernoulli RBM. */
export interface RbmLayer {
  readonly V: number;
  readonly H: number;
  /** V x H */
  readonly W: Float32Array;
  /** visible bias, V */
  readonly b: Float32Array;
  /** hidden bias, H */
  readonly c: Float32Array;
}

/** The counters that seed the Bernoulli draws of a task (see rng.ts). */
export interface RngKey {
  readonly seed: number;
  readonly iteration: number;
}

/**
 * One CD-1 task. The input x is propagated up through the frozen `lower`
 * layers (sigmoid, probabilities, no sampling) to give v0, then:
 *   h0 = sigmoid(v0 W + c), s0 ~ Bernoulli(h0) with u = uniform(seed, iteration, exampleIds[i], j),
 *   s0[i][j] = u < h0[i][j] ? 1 : 0,
 *   v1 = sigmoid(s0 W^T + b), h1 = sigmoid(v1 W + c).
 */
export interface Cd1Request {
  readonly lower: readonly DenseLayer[];
  readonly rbm: RbmLayer;
  /** B x lower[0].nIn (or B x V with no lower layers), values in [0, 1] */
  readonly x: Float32Array;
  readonly batch: number;
  /** B global example indices: the `example` counter of each row's draws */
  readonly exampleIds: Uint32Array;
  readonly rng: RngKey;
  /**
   * Optional cache key of the weights' contents (the coordinator's weights
   * version): a backend may keep weights it has seen under the same key and
   * the same arrays resident instead of sending them again.
   */
  readonly weightsVersion?: number;
}

/** CD-1 statistics, summed over the batch (ascent direction, per DESIGN.md). */
export interface Cd1Sums {
  /** v0^T h0 - v1^T h1, V x H */
  readonly dW: Float32Array;
  /** sum over rows of (v0 - v1), V */
  readonly db: Float32Array;
  /** sum over rows of (h0 - h1), H */
  readonly dc: Float32Array;
  /** sum of (v0 - v1)^2 */
  readonly reconError: number;
  readonly count: number;
}

/**
 * One backprop task on an MLP: sigmoid hidden layers, softmax output,
 * cross-entropy loss.
 */
export interface BackpropRequest {
  readonly layers: readonly DenseLayer[];
  /** B x layers[0].nIn */
  readonly x: Float32Array;
  /** B class indices in [0, K) */
  readonly labels: Uint8Array;
  readonly batch: number;
  /** as in Cd1Request */
  readonly weightsVersion?: number;
}

/** Gradients of the summed cross-entropy loss (descent direction). */
export interface BackpropSums {
  /** one per layer, nIn x nOut */
  readonly dW: Float32Array[];
  /** one per layer, nOut */
  readonly db: Float32Array[];
  /** sum of -log p[label] */
  readonly loss: number;
  /** rows whose argmax equals the label */
  readonly correct: number;
  readonly count: number;
}

export type BackendKind = 'cpu' | 'webgpu';

export interface ComputeBackend {
  readonly kind: BackendKind;
  /** What runs the kernels, for people: "WebAssembly SIMD, 1 thread", "llvmpipe (LLVM 15)". */
  readonly adapter: string;
  cd1(req: Cd1Request): Promise<Cd1Sums>;
  backprop(req: BackpropRequest): Promise<BackpropSums>;
  /**
   * Optional batched entry points, for a worker's bundle of tasks (several
   * tasks of one iteration and weights version, uploaded as one sum): the
   * requests share their layers (the same arrays) and, for CD-1, the rng key;
   * the result is the sum of cd1() / backprop() of each, up to float summation
   * order (counts, losses and hits exactly). A backend without them is called
   * once per task and the sums are added on the CPU (core/task.ts,
   * computeTasks); the webgpu backend runs a bundle as one submit and one
   * readback.
   */
  cd1Bundle?(reqs: readonly Cd1Request[]): Promise<Cd1Sums>;
  backpropBundle?(reqs: readonly BackpropRequest[]): Promise<BackpropSums>;
  /** Softmax probabilities of the MLP's output, B x K (the last layer is softmax, the others sigmoid). */
  predict(layers: readonly DenseLayer[], x: Float32Array, batch: number): Promise<Float32Array>;
  /** Hidden probabilities after the sigmoid layers, B x layers[last].nOut (all sigmoid). */
  propagate(layers: readonly DenseLayer[], x: Float32Array, batch: number): Promise<Float32Array>;
  dispose(): void;
}
