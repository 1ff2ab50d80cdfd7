import { describe, expect, it } from 'vitest';
import { createCpuBackend } from '../../../core/cpu/index.ts';
import { parseJobConfig } from '../../../core/model/config.ts';
import { initParams } from '../../../core/model/params.ts';
import { computeTask, type ExampleBatch } from '../../../core/task.ts';
import { Verifier } from '../../../coordinator/trust/verifier.ts';

const cfg = parseJobConfig({ name: 'v', layers: [784, 13, 10], partitions: 1, seed: 3 });

function batch(n: number, seed: number): ExampleBatch {
  let s = seed;
  const r = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  return { pixels: Uint8Array.from({ length: n * 784 }, () => (r() < 0.2 ? Math.floor(r() * 256) : 0)), labels: Uint8Array.from({ length: n }, () => Math.floor(r() * 10)), ids: Uint32Array.from({ length: n }, (_, i) => seed * 100 + i), dim: 784 };
}

describe('Verifier', () => {
  it('recomputes a bundle (summed in order), agrees with an honest result and not with a negated one; figures per job', async () => {
    const v = new Verifier({ backend: () => createCpuBackend(), random: () => 0.5 });
    const params = initParams(cfg);
    const phase = { kind: 'finetune' } as const;
    const bs = [batch(7, 1), batch(5, 2)];
    const cpu = await createCpuBackend();
    const parts = await Promise.all(bs.map((b) => computeTask(cpu, cfg, params, { phase, iteration: 4, seed: cfg.seed }, b)));
    const honest = { grads: new Map([...parts[0]!.grads].map(([n, g]) => [n, Float32Array.from(g, (x, i) => x + parts[1]!.grads.get(n)![i]!)])), loss: parts[0]!.loss + parts[1]!.loss, correct: parts[0]!.correct + parts[1]!.correct, count: 12 };
    const re = await v.recompute(cfg, params, phase, 4, bs);
    expect(re.count).toBe(12);
    v.reputation.register('w', 's', 0);
    expect(v.shouldCheck('w', phase)).toBe(true);
    const ok = v.judge('job', 'w', phase, honest, re, 0.01, 1);
    expect(ok.comparison.agree).toBe(true);
    expect(ok.record).toMatchObject({ agreed: 1, consecutiveBy: { finetune: 1 } });
    const negated = { ...honest, grads: new Map([...honest.grads].map(([n, g]) => [n, Float32Array.from(g, (x) => -x)])) };
    const bad = v.judge('job', 'w', phase, negated, re, 0.01, 2);
    expect(bad.comparison.agree).toBe(false);
    expect(bad.record).toMatchObject({ failed: 1, consecutive: 0, marked: true });
    v.counted('job', 12);
    expect(v.figuresOf('job')).toMatchObject({ checks: 2, failures: 1, checkedExamples: 24, acceptedExamples: 12 });
    cpu.dispose();
    await v.dispose();
  });

  it('a worker it has no record of (registered before a restart) is checked and judged on a fresh record', async () => {
    const v = new Verifier({ backend: () => createCpuBackend() });
    const phase = { kind: 'pretrain', layer: 0 } as const;
    expect(v.shouldCheck('old', phase)).toBe(true);
    expect(v.reputation.record('old')).toMatchObject({ source: 'unknown', checked: 0 });
    const r = { grads: new Map([['x', Float32Array.of(1, 2)]]), loss: 1, correct: 0, count: 1 };
    expect(v.judge('job', 'older', phase, r, r, 0, 0).record).toMatchObject({ workerId: 'older', agreed: 1 });
    await v.dispose();
  });
});
