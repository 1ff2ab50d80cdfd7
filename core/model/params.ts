/**
 * The model's parameters as named float32 tensors, and the views the compute
 * backends take of them.
 *
 * For layers [V0, H1, ..., Hn, K] the DBN has RBMs k = 0..n-1 with
 *   rbm{k}.W     (H_k x H_{k+1}, with H_0 = V0)
 *   rbm{k}.vbias (H_k)    visible bias, used only in pre-training
 *   rbm{k}.hbias (H_{k+1}) hidden bias, the MLP's bias too
 * and the softmax output layer out.W (Hn x K), out.b (K). Fine-tuning trains
 * the MLP built from rbm{k}.W, rbm{k}.hbias and out.*.
 */
import type { DenseLayer, RbmLayer } from '../backend.ts';
import { symmetric } from '../rng.ts';
import type { JobConfig } from './config.ts';
import type { Phase } from './plan.ts';

export type Params = Map<string, Float32Array>;

export function tensorShapes(cfg: JobConfig): Map<string, number[]> {
  const L = cfg.layers;
  const shapes = new Map<string, number[]>();
  for (let k = 0; k + 2 < L.length; k++) {
    shapes.set(`rbm${k}.W`, [L[k]!, L[k + 1]!]);
    shapes.set(`rbm${k}.vbias`, [L[k]!]);
    shapes.set(`rbm${k}.hbias`, [L[k + 1]!]);
  }
  shapes.set('out.W', [L[L.length - 2]!, L[L.length - 1]!]);
  shapes.set('out.b', [L[L.length - 1]!]);
  return shapes;
}

/** Weights ~ uniform with standard deviation 0.01 (Hinton's recipe), biases 0; a pure function of the seed. */
export function initParams(cfg: JobConfig): Params {
  const params: Params = new Map();
  const amp = 0.01 * Math.sqrt(3);
  let stream = 0x1000;
  for (const [name, shape] of tensorShapes(cfg)) {
    const t = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (name.endsWith('.W')) {
      const cols = shape[1]!;
      for (let i = 0; i < t.length; i++) t[i] = amp * symmetric(cfg.seed, stream, Math.floor(i / cols), i % cols);
    }
    stream++;
    params.set(name, t);
  }
  return params;
}

function get(params: Params, name: string): Float32Array {
  const t = params.get(name);
  if (!t) throw new Error(`missing tensor "${name}"`);
  return t;
}

export function rbmLayer(cfg: JobConfig, params: Params, k: number): RbmLayer {
  return {
    V: cfg.layers[k]!,
    H: cfg.layers[k + 1]!,
    W: get(params, `rbm${k}.W`),
    b: get(params, `rbm${k}.vbias`),
    c: get(params, `rbm${k}.hbias`),
  };
}

/** The sigmoid layers below RBM k: rbm0..rbm{k-1} as dense up-layers. */
export function lowerLayers(cfg: JobConfig, params: Params, k: number): DenseLayer[] {
  const out: DenseLayer[] = [];
  for (let i = 0; i < k; i++) {
    out.push({ nIn: cfg.layers[i]!, nOut: cfg.layers[i + 1]!, W: get(params, `rbm${i}.W`), b: get(params, `rbm${i}.hbias`) });
  }
  return out;
}

/** The MLP: every RBM as a sigmoid layer, then the softmax output layer. */
export function mlpLayers(cfg: JobConfig, params: Params): DenseLayer[] {
  const n = cfg.layers.length;
  const layers = lowerLayers(cfg, params, n - 2);
  layers.push({ nIn: cfg.layers[n - 2]!, nOut: cfg.layers[n - 1]!, W: get(params, 'out.W'), b: get(params, 'out.b') });
  return layers;
}

/** Names of the tensors a phase trains, in a fixed order. */
export function phaseTensors(cfg: JobConfig, phase: Phase): string[] {
  if (phase.kind === 'pretrain') return [`rbm${phase.layer}.W`, `rbm${phase.layer}.vbias`, `rbm${phase.layer}.hbias`];
  const names: string[] = [];
  for (let k = 0; k + 2 < cfg.layers.length; k++) names.push(`rbm${k}.W`, `rbm${k}.hbias`);
  names.push('out.W', 'out.b');
  return names;
}

export function cloneParams(params: Params): Params {
  return new Map([...params].map(([k, v]) => [k, v.slice()]));
}
