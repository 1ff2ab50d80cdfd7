/**
 * The outer optimizer of local SGD (model/training.ts), applied by the
 * coordinator (and the in-process trainer) to the sum of a round's deltas
 * over `tasks` tasks, mean = sum / tasks:
 *   plain:    W += eta * mean
 *   nesterov: u = mu * u + mean;  W += eta * (mean + mu * u)
 * `u` is the momentum of the mean deltas (minus PyTorch's buffer on the outer
 * gradient -mean), kept per tensor, reset at a phase's end like the inner
 * velocities, and checkpointed as "vel.<name>".
 */
import type { Params } from './params.ts';
import type { OuterConfig } from './training.ts';

export class OuterOptimizer {
  /** u per tensor name */
  readonly momentum = new Map<string, Float32Array>();

  constructor(readonly cfg: OuterConfig) {}

  /** Applies one outer step in place from the summed deltas of `tasks` tasks. */
  step(params: Params, sums: ReadonlyMap<string, Float32Array>, tasks: number): void {
    if (!(tasks > 0)) throw new Error(`outer step over ${tasks} tasks: need at least one`);
    const inv = 1 / tasks;
    const eta = this.cfg.learningRate;
    const mu = this.cfg.kind === 'nesterov' ? this.cfg.momentum : 0;
    for (const [name, d] of sums) {
      const w = params.get(name);
      if (!w) throw new Error(`delta for unknown tensor "${name}"`);
      if (w.length !== d.length) throw new Error(`delta "${name}" has ${d.length} values, the tensor ${w.length}`);
      if (mu === 0) {
        for (let i = 0; i < w.length; i++) w[i] = w[i]! + eta * (d[i]! * inv);
        continue;
      }
      let u = this.momentum.get(name);
      if (!u) {
        u = new Float32Array(w.length);
        this.momentum.set(name, u);
      }
      for (let i = 0; i < w.length; i++) {
        const m = d[i]! * inv;
        const ui = mu * u[i]! + m;
        u[i] = ui;
        w[i] = w[i]! + eta * (m + mu * ui);
      }
    }
  }

  reset(): void {
    this.momentum.clear();
  }
}
