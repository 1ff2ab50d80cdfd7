import { describe, expect, it } from 'vitest';
import { createCpuBackend } from '../../core/cpu/index.ts';
import { parseJobConfig } from '../../core/model/config.ts';
import { subset } from '../../core/dataset.ts';
import { loadMnist } from '../../datasets/mnist.ts';
import { decodeCheckpoint, encodeCheckpoint } from '../../coordinator/engine/checkpoint.ts';
import { evaluate, Trainer } from '../../coordinator/trainer.ts';

const mnist = await loadMnist();

function sameParams(a: Map<string, Float32Array>, b: Map<string, Float32Array>): boolean {
  for (const [k, v] of a) {
    const w = b.get(k)!;
    if (Buffer.compare(Buffer.from(v.buffer, v.byteOffset, v.byteLength), Buffer.from(w.buffer, w.byteOffset, w.byteLength)) !== 0) return false;
  }
  return true;
}

describe('in-process trainer', () => {
  const small = parseJobConfig({
    layers: [784, 40, 30, 10],
    partitions: 3,
    seed: 11,
    pretrain: { epochs: 1, batchSize: 50 },
    finetune: { epochs: 1, batchSize: 50 },
  });
  const train = subset(mnist.train, 600);

  it('is deterministic: the same seed gives the same weights, bit for bit', async () => {
    const backend = await createCpuBackend();
    const a = new Trainer({ backend, config: small, train });
    const b = new Trainer({ backend, config: small, train });
    while (!a.done) await a.step();
    while (!b.done) await b.step();
    expect(a.iteration).toBe(36);
    expect(sameParams(a.params, b.params)).toBe(true);
    const other = new Trainer({ backend, config: { ...small, seed: 12 }, train });
    while (!other.done) await other.step();
    expect(sameParams(a.params, other.params)).toBe(false);
  });

  it('resumed from a checkpoint mid-phase, it ends with the same weights as an uninterrupted run', async () => {
    const backend = await createCpuBackend();
    const whole = new Trainer({ backend, config: small, train });
    while (!whole.done) await whole.step();
    const first = new Trainer({ backend, config: small, train });
    for (let i = 0; i < 17; i++) await first.step(); // stops inside pre-training of layer 1, momentum in flight
    const bytes = encodeCheckpoint(first.checkpoint());
    const second = new Trainer({ backend, config: small, train, resume: decodeCheckpoint(bytes, 'ck', small) });
    expect(second.iteration).toBe(17);
    while (!second.done) await second.step();
    expect(sameParams(whole.params, second.params)).toBe(true);
  });

  it('trains a 784-256-10 DBN on 10,000 MNIST examples to under 5% test error', async () => {
    const backend = await createCpuBackend();
    const config = parseJobConfig({
      layers: [784, 256, 10],
      seed: 1,
      pretrain: { epochs: 3, learningRate: { start: 0.1, decay: 1, min: 0.1 } },
      finetune: { epochs: 10, learningRate: { start: 1, decay: 0.9, min: 0.01 } },
    });
    const trainer = new Trainer({ backend, config, train: subset(mnist.train, 10_000) });
    let reconFirst = 0;
    let reconLast = 0;
    while (!trainer.done) {
      const m = await trainer.step();
      if (m.plan.iteration === 0) reconFirst = m.loss;
      if (m.plan.phase.kind === 'pretrain') reconLast = m.loss;
    }
    expect(reconLast).toBeLessThan(reconFirst / 3);
    const ev = await evaluate(backend, config, trainer.params, mnist.test);
    console.log(`784-256-10 on 10k examples: test error ${(100 * ev.error).toFixed(2)}%`);
    expect(ev.count).toBe(10_000);
    expect(ev.error).toBeLessThan(0.05);
    expect([...ev.confusion].reduce((a, b) => a + b, 0)).toBe(10_000);
  }, 180_000);
});
