import { describe, expect, it } from 'vitest';
import { ConfigError, parseJobConfig } from '../../core/model/config.ts';
import { OuterOptimizer } from '../../core/model/outer.ts';
import { TrainingPlan } from '../../core/model/plan.ts';
import { LocalSgdPlan, SYNC_TRAINING, TRAINING_DEFAULTS, trainingOf } from '../../core/model/training.ts';

describe('training config', () => {
  it('a job without `training` is sync fp32 and its config has no such key (unchanged JSON)', () => {
    const cfg = parseJobConfig({ layers: [784, 20, 10] });
    expect('training' in cfg).toBe(false);
    expect(trainingOf(cfg)).toEqual(SYNC_TRAINING);
  });

  it('fills omitted fields from the local-SGD defaults', () => {
    const cfg = parseJobConfig({ training: { mode: 'local-sgd', localSteps: 10, outer: { learningRate: 0.5 } } });
    expect(cfg.training).toEqual({ ...TRAINING_DEFAULTS, localSteps: 10, outer: { ...TRAINING_DEFAULTS.outer, learningRate: 0.5 } });
    expect(parseJobConfig({ training: { mode: 'sync', up: 'f16', down: 'int8' } }).training).toMatchObject({ mode: 'sync', up: 'f16', down: 'int8' });
  });

  it('names every bad field', () => {
    try {
      parseJobConfig({ training: { mode: 'async', localSteps: 0, outer: { kind: 'adam', momentum: 1, x: 1 }, up: 'bf16', down: 3, blockSize: 8, extra: true } });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      const fields = (e as ConfigError).issues.map((i) => i.field).sort();
      expect(fields).toEqual(['training.blockSize', 'training.down', 'training.extra', 'training.localSteps', 'training.mode', 'training.outer.kind', 'training.outer.momentum', 'training.outer.x', 'training.up']);
    }
    expect(() => parseJobConfig({ training: [] })).toThrow(/training: expected an object/);
  });
});

describe('local-SGD round plan', () => {
  const cfg = parseJobConfig({ layers: [784, 20, 10], partitions: 4, pretrain: { epochs: 1, batchSize: 50 }, finetune: { epochs: 2, batchSize: 50 } });
  const plan = new TrainingPlan(cfg, 1000); // 20 iterations per epoch: pretrain 20, finetune 40

  it('cuts each phase into rounds of H local steps; the same examples as sync mode; rounds never cross a phase end', () => {
    const lsp = new LocalSgdPlan(plan, 3);
    // pretrain: ceil(20 / 4) = 5 local steps -> rounds of 3, 2; finetune: 10 -> 3, 3, 3, 1
    expect(lsp.totalRounds).toBe(6);
    const rounds = Array.from({ length: 6 }, (_, r) => lsp.at(r));
    expect(rounds.map((r) => r.steps)).toEqual([3, 2, 3, 3, 3, 1]);
    expect(rounds.map((r) => r.phaseEnd)).toEqual([false, true, false, false, false, true]);
    expect(rounds.map((r) => r.firstStep)).toEqual([0, 3, 0, 3, 6, 9]);
    expect(rounds[1]!.phase).toEqual({ kind: 'pretrain', layer: 0 });
    expect(rounds[2]!.phase).toEqual({ kind: 'finetune' });
    // 4 partitions x 5 local steps x 50 = 1000 examples = sync's 20 iterations x 50
    expect(lsp.iterationOf(0, 4)).toBe(16);
    expect(lsp.iterationOf(1, 9)).toBe(20 + 36);
    expect(lsp.localFraction(0, 250)).toBeCloseTo(0.2);
    expect(() => lsp.at(6)).toThrow(RangeError);
  });
});

describe('outer optimizer', () => {
  const w0 = () => new Map([['a.W', Float32Array.from([1, -2, 0.5])]]);
  const sums = new Map([['a.W', Float32Array.from([0.3, 0.6, -0.9])]]); // 3 tasks: mean (0.1, 0.2, -0.3)

  it('plain averaging with outer learning rate 1 is federated averaging', () => {
    const p = w0();
    new OuterOptimizer({ kind: 'plain', learningRate: 1, momentum: 0.9 }).step(p, sums, 3);
    expect([...p.get('a.W')!]).toEqual([...Float32Array.from([1.1, -1.8, 0.2])]);
  });

  it('Nesterov matches PyTorch SGD(nesterov) on the outer gradient -mean, over two steps, float64 reference', () => {
    const eta = 0.7;
    const mu = 0.9;
    const p = w0();
    const opt = new OuterOptimizer({ kind: 'nesterov', learningRate: eta, momentum: mu });
    const ref = [1, -2, 0.5].map((x) => Math.fround(x));
    const buf = [0, 0, 0];
    const mean = [0.1, 0.2, -0.3].map((m) => Math.fround(m * 3) / 3);
    for (let step = 0; step < 2; step++) {
      opt.step(p, sums, 3);
      for (let i = 0; i < 3; i++) {
        const g = -mean[i]!; // PyTorch: buf = mu buf + g; p -= lr (g + mu buf)
        buf[i] = mu * buf[i]! + g;
        ref[i] = ref[i]! - eta * (g + mu * buf[i]!);
      }
    }
    for (let i = 0; i < 3; i++) expect(p.get('a.W')![i]).toBeCloseTo(ref[i]!, 6);
    expect(opt.momentum.get('a.W')).toBeDefined();
    opt.reset();
    expect(opt.momentum.size).toBe(0);
    expect(() => opt.step(p, sums, 0)).toThrow(/at least one/);
    expect(() => opt.step(p, new Map([['b.W', new Float32Array(3)]]), 1)).toThrow(/unknown tensor/);
  });
});
