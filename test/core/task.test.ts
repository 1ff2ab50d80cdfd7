/**
 * computeTasks (core/task.ts): a bundle of tasks equals the sum of
 * computeTask of each; a backend with the batched entry points (backend.ts:
 * cd1Bundle, backpropBundle) gets one call for the bundle, one without them
 * (the cpu backend) one call per task, and tasks that cannot share a call
 * (other phases or iterations) are never bundled.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { BackpropRequest, Cd1Request, ComputeBackend } from '../../core/backend.ts';
import { createCpuBackend } from '../../core/cpu/index.ts';
import { parseJobConfig } from '../../core/model/config.ts';
import { initParams } from '../../core/model/params.ts';
import type { Phase } from '../../core/model/plan.ts';
import { computeTask, computeTasks, type ExampleBatch, type TaskResult, type TaskSpec } from '../../core/task.ts';

const cfg = parseJobConfig({ layers: [20, 12, 9, 10], seed: 5 });
const params = initParams(cfg);

let state = 99;
const next = (): number => {
  state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
  return state;
};
function batch(B: number, firstId: number): ExampleBatch {
  return {
    pixels: Uint8Array.from({ length: B * 20 }, () => next() & 255),
    labels: Uint8Array.from({ length: B }, () => next() % 10),
    ids: Uint32Array.from({ length: B }, (_, i) => firstId + i),
    dim: 20,
  };
}

/** The cpu backend with batched entry points that concatenate the requests (as webgpu does), counting calls. */
function bundling(cpu: ComputeBackend): ComputeBackend & { calls: string[] } {
  const calls: string[] = [];
  const cat = <T extends Float32Array | Uint32Array | Uint8Array>(parts: T[], make: (n: number) => T): T => {
    const out = make(parts.reduce((s, p) => s + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p as never, at);
      at += p.length;
    }
    return out;
  };
  return {
    ...cpu,
    kind: cpu.kind,
    adapter: cpu.adapter,
    calls,
    cd1: (r) => (calls.push('cd1'), cpu.cd1(r)),
    backprop: (r) => (calls.push('backprop'), cpu.backprop(r)),
    predict: (...a) => cpu.predict(...a),
    propagate: (...a) => cpu.propagate(...a),
    dispose: () => cpu.dispose(),
    cd1Bundle: (rs: readonly Cd1Request[]) => {
      calls.push(`cd1Bundle(${rs.length})`);
      return cpu.cd1({ ...rs[0]!, x: cat(rs.map((r) => r.x), (n) => new Float32Array(n)), exampleIds: cat(rs.map((r) => r.exampleIds), (n) => new Uint32Array(n)), batch: rs.reduce((s, r) => s + r.batch, 0) });
    },
    backpropBundle: (rs: readonly BackpropRequest[]) => {
      calls.push(`backpropBundle(${rs.length})`);
      return cpu.backprop({ ...rs[0]!, x: cat(rs.map((r) => r.x), (n) => new Float32Array(n)), labels: cat(rs.map((r) => r.labels), (n) => new Uint8Array(n)), batch: rs.reduce((s, r) => s + r.batch, 0) });
    },
  };
}

function expectSameResult(got: TaskResult, want: TaskResult): void {
  expect(got.count).toBe(want.count);
  expect(got.correct).toBe(want.correct);
  expect(got.loss).toBeCloseTo(want.loss, 3);
  expect([...got.grads.keys()]).toEqual([...want.grads.keys()]);
  for (const [name, g] of want.grads) {
    const a = got.grads.get(name)!;
    let worst = 0;
    for (let i = 0; i < g.length; i++) worst = Math.max(worst, Math.abs(a[i]! - g[i]!) / (1 + Math.abs(g[i]!)));
    expect(worst, name).toBeLessThan(1e-4);
  }
}

async function sumOfTasks(cpu: ComputeBackend, specs: TaskSpec[], batches: ExampleBatch[]): Promise<TaskResult> {
  const rs = [];
  for (let i = 0; i < specs.length; i++) rs.push(await computeTask(cpu, cfg, params, specs[i]!, batches[i]!));
  const grads = new Map([...rs[0]!.grads].map(([k, g]) => [k, Float64Array.from(g)]));
  for (const r of rs.slice(1)) for (const [k, g] of r.grads) g.forEach((v, i) => (grads.get(k)![i]! += v));
  return {
    grads: new Map([...grads].map(([k, g]) => [k, Float32Array.from(g)])),
    loss: rs.reduce((s, r) => s + r.loss, 0),
    correct: rs.reduce((s, r) => s + r.correct, 0),
    count: rs.reduce((s, r) => s + r.count, 0),
  };
}

describe('computeTasks', () => {
  let cpu: ComputeBackend;
  beforeAll(async () => {
    cpu = await createCpuBackend();
  });

  const phases: [string, Phase][] = [['fine-tuning', { kind: 'finetune' }], ['CD-1 of layer 1', { kind: 'pretrain', layer: 1 }]];
  for (const [what, phase] of phases) {
    it(`${what}: a bundle is one batched call where the backend has one, one call per task where not, the same sums either way`, async () => {
      const batches = [batch(7, 100), batch(0, 200), batch(13, 300)];
      const specs: TaskSpec[] = batches.map(() => ({ phase, iteration: 4, seed: cfg.seed, weightsVersion: 2 }));
      const want = await sumOfTasks(cpu, specs, batches);
      expectSameResult(await computeTasks(cpu, cfg, params, specs, batches), want);
      const b = bundling(cpu);
      expectSameResult(await computeTasks(b, cfg, params, specs, batches), want);
      // the empty task adds nothing and is left out of the call
      expect(b.calls).toEqual([phase.kind === 'finetune' ? 'backpropBundle(2)' : 'cd1Bundle(2)']);
    });
  }

  it('tasks of other iterations or phases are never bundled; one task is a plain call', async () => {
    const b = bundling(cpu);
    const batches = [batch(5, 10), batch(6, 20)];
    await computeTasks(b, cfg, params, [{ phase: { kind: 'finetune' }, iteration: 1, seed: 5 }, { phase: { kind: 'finetune' }, iteration: 2, seed: 5 }], batches);
    await computeTasks(b, cfg, params, [{ phase: { kind: 'pretrain', layer: 0 }, iteration: 1, seed: 5 }, { phase: { kind: 'pretrain', layer: 1 }, iteration: 1, seed: 5 }], batches);
    await computeTasks(b, cfg, params, [{ phase: { kind: 'finetune' }, iteration: 1, seed: 5 }], [batches[0]!]);
    expect(b.calls).toEqual(['backprop', 'backprop', 'cd1', 'cd1', 'backprop']);
    await expect(computeTasks(b, cfg, params, [], [])).rejects.toThrow(/0 tasks and 0 example batches/);
  });
});
