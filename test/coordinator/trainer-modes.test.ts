/**
 * The in-process trainer's training modes (core/model/training.ts):
 * the sync path is untouched by a float32 training config, local SGD is
 * deterministic, resumes bit for bit, and learns.
 */
import { describe, expect, it } from 'vitest';
import { createCpuBackend } from '../../core/cpu/index.ts';
import { parseJobConfig, type JobConfig } from '../../core/model/config.ts';
import { subset } from '../../core/dataset.ts';
import { decodeCheckpoint, encodeCheckpoint } from '../../coordinator/engine/checkpoint.ts';
import { evaluate, Trainer } from '../../coordinator/trainer.ts';
import { mnistData } from './harness.ts';

const mnist = await mnistData();
const train = subset(mnist.train, 3000);
const test = subset(mnist.test, 500);

function sameBits(a: Map<string, Float32Array>, b: Map<string, Float32Array>): boolean {
  for (const [k, v] of a) {
    const w = b.get(k)!;
    if (!Buffer.from(v.buffer, v.byteOffset, v.byteLength).equals(Buffer.from(w.buffer, w.byteOffset, w.byteLength))) return false;
  }
  return true;
}

async function run(cfg: JobConfig, stopAt = Infinity): Promise<Trainer> {
  const tr = new Trainer({ backend: await createCpuBackend(), config: cfg, train });
  while (!tr.done && tr.iteration < stopAt) await tr.step();
  return tr;
}

const base = { layers: [784, 64, 10], partitions: 4, seed: 3, pretrain: { epochs: 1, batchSize: 50 }, finetune: { epochs: 4, batchSize: 50, learningRate: { start: 1, decay: 1, min: 1 } } };

describe('in-process trainer, training modes', () => {
  it('sync mode with a float32 training config trains the same bits as a job without one', async () => {
    const legacy = await run(parseJobConfig(base));
    const explicit = await run(parseJobConfig({ ...base, training: { mode: 'sync', up: 'f32', down: 'f32' } }));
    expect(explicit.iteration).toBe(legacy.iteration);
    expect(sameBits(legacy.params, explicit.params)).toBe(true);
  });

  it('local SGD (int8 both ways) is deterministic, resumes from a checkpoint bit for bit, and reaches sync mode\'s test error at equal examples', async () => {
    const cfg = parseJobConfig({ ...base, training: { mode: 'local-sgd', localSteps: 8, up: 'int8', down: 'int8', blockSize: 64 } });
    const a = await run(cfg);
    // 60 iterations per epoch; pretrain: ceil(60 / 4) = 15 local steps (2 rounds of 8); finetune: 60 (8 rounds)
    expect(a.total).toBe(2 + 8);
    expect(a.iteration).toBe(10);
    const b = await run(cfg, 3);
    const bytes = encodeCheckpoint(b.checkpoint());
    const ck = decodeCheckpoint(bytes, 'ck', cfg);
    expect(ck.published).toBeDefined();
    const c = new Trainer({ backend: await createCpuBackend(), config: cfg, train, resume: ck });
    while (!c.done) await c.step();
    expect(sameBits(a.params, c.params)).toBe(true);
    const d = await run({ ...cfg, seed: 4 });
    expect(sameBits(a.params, d.params)).toBe(false);
    const backend = await createCpuBackend();
    const ev = await evaluate(backend, cfg, a.params, test);
    const sync = await evaluate(backend, cfg, (await run(parseJobConfig(base))).params, test);
    console.log(`3000 examples x 5 epochs: test error local SGD (H=8, int8) ${(ev.error * 100).toFixed(1)}%, sync ${(sync.error * 100).toFixed(1)}%`);
    expect(ev.error).toBeLessThan(0.25);
    expect(ev.error).toBeLessThanOrEqual(sync.error + 0.03);
  });
});
