/**
 * Momentum SGD with weight cost, per Hinton's recipe, on gradient sums:
 *   vel = m * vel - lr * (grad / n + wc * W)     (wc only for weights, not biases)
 *   W  += vel
 * `grad` is the summed gradient of the loss to minimise over n examples.
 * Velocities are kept per tensor and reset when a phase starts.
 */
import type { Params } from './params.ts';

export interface StepHyper {
  readonly learningRate: number;
  readonly momentum: number;
  readonly weightCost: number;
}

export class MomentumSgd {
  /** velocity per tensor name; checkpointed as "vel.<name>" */
  readonly velocity = new Map<string, Float32Array>();

  /** Applies one update in place. grads holds summed gradients over `count` examples. */
  step(params: Params, grads: ReadonlyMap<string, Float32Array>, count: number, h: StepHyper): void {
    if (!(count > 0)) throw new Error(`update over ${count} examples: need at least one`);
    const inv = 1 / count;
    for (const [name, g] of grads) {
      const w = params.get(name);
      if (!w) throw new Error(`gradient for unknown tensor "${name}"`);
      if (w.length !== g.length) throw new Error(`gradient "${name}" has ${g.length} values, the tensor ${w.length}`);
      let v = this.velocity.get(name);
      if (!v) {
        v = new Float32Array(w.length);
        this.velocity.set(name, v);
      }
      const wc = name.endsWith('.W') ? h.weightCost : 0;
      const m = h.momentum;
      const lr = h.learningRate;
      for (let i = 0; i < w.length; i++) {
        const vi = m * v[i]! - lr * (g[i]! * inv + wc * w[i]!);
        v[i] = vi;
        w[i] = w[i]! + vi;
      }
    }
  }

  reset(): void {
    this.velocity.clear();
  }
}
