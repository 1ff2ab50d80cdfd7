import { describe, expect, it } from 'vitest';
import { ConfigError, DEFAULT_JOB, parseJobConfig } from '../../core/model/config.ts';
import { decayValue, partitionRange, rampValue, TrainingPlan } from '../../core/model/plan.ts';

function issuesOf(input: unknown): string[] {
  try {
    parseJobConfig(input);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as ConfigError).issues.map((i) => i.field);
  }
  throw new Error('expected a ConfigError');
}

describe('job config', () => {
  it('fills omitted fields from the defaults', () => {
    const c = parseJobConfig({ layers: [784, 256, 10], finetune: { epochs: 2 } });
    expect(c.layers).toEqual([784, 256, 10]);
    expect(c.finetune.epochs).toBe(2);
    expect(c.finetune.batchSize).toBe(DEFAULT_JOB.finetune.batchSize);
    expect(c.pretrain).toEqual(DEFAULT_JOB.pretrain);
  });

  it('rejects nonsense with every problem named by its field', () => {
    expect(issuesOf(null)).toEqual(['']);
    expect(issuesOf({ layers: [784] })).toEqual(['layers']);
    expect(issuesOf({ layers: [784, 0, 10] })).toEqual(['layers']);
    expect(issuesOf({ layers: [784, 10, 1] })).toEqual(['layers']);
    expect(issuesOf({ layers: [784, 100000, 100000, 10] })).toEqual(['layers']);
    expect(issuesOf({ partitions: 0, seed: -1 }).sort()).toEqual(['partitions', 'seed']);
    expect(issuesOf({ finetune: { batchSize: 2.5, learningRate: { start: -1 } } }).sort()).toEqual([
      'finetune.batchSize',
      'finetune.learningRate.start',
    ]);
    expect(issuesOf({ pretrain: { momentum: { end: 1.5 } } })).toEqual(['pretrain.momentum.end']);
    expect(issuesOf({ bogus: 1 })).toEqual(['bogus']);
    expect(issuesOf({ pretrain: { epochs: 0 }, finetune: { epochs: 0 } })).toEqual(['finetune.epochs']);
    expect(issuesOf({ name: '../../etc' })).toEqual(['name']);
    expect(issuesOf({ seed: 'one' })).toEqual(['seed']);
    expect(issuesOf({ trainLimit: Number.NaN })).toEqual(['trainLimit']);
  });

  it('names nested unknown fields, wrong shapes and array entries, and says what was expected', () => {
    expect(issuesOf([1, 2])).toEqual(['']);
    expect(issuesOf({ pretrain: { bogus: 1, learningRate: 3 } }).sort()).toEqual(['pretrain.bogus', 'pretrain.learningRate']);
    expect(issuesOf({ finetune: null })).toEqual(['finetune']);
    expect(issuesOf(JSON.parse('{"__proto__": {"seed": 2}}'))).toEqual(['__proto__']);
    expect(issuesOf({ layers: [784, 'x', 10] })).toEqual(['layers']);
    const messages = (input: unknown): string[] => {
      try {
        parseJobConfig(input);
      } catch (e) {
        return (e as ConfigError).issues.map((i) => `${i.field}: ${i.message}`);
      }
      return [];
    };
    expect(messages({ seed: 'one' })).toEqual(['seed: expected a finite number, got "one"']);
    expect(messages({ partitions: 0 })).toEqual(['partitions: expected an integer in [1, 4096], got 0']);
    expect(messages({ finetune: { learningRate: { decay: 0 } } })).toEqual(['finetune.learningRate.decay: expected a number in (0, 1], got 0']);
    expect(messages({ pretrain: { nope: true } })).toEqual(['pretrain.nope: unknown field']);
    expect(messages({ layers: [784, 10, 1] })).toEqual(['layers: the output layer needs at least 2 classes']);
    expect(() => parseJobConfig({ seed: -1 })).toThrow(/^invalid job config: seed: expected an integer/);
  });

  it('a full config passes through unchanged; a base other than the default fills the gaps', () => {
    expect(parseJobConfig(structuredClone(DEFAULT_JOB))).toEqual(DEFAULT_JOB);
    const base = parseJobConfig({ layers: [784, 64, 10], seed: 7 });
    expect(parseJobConfig({ partitions: 2 }, base)).toMatchObject({ layers: [784, 64, 10], seed: 7, partitions: 2 });
  });
});

describe('training plan', () => {
  const cfg = parseJobConfig({
    layers: [784, 50, 40, 10],
    partitions: 3,
    pretrain: { epochs: 2, batchSize: 100 },
    finetune: { epochs: 1.5, batchSize: 250 },
  });
  const plan = new TrainingPlan(cfg, 1000);

  it('lays out one phase per RBM, then fine-tuning', () => {
    expect(plan.phases.map((p) => [p.phase, p.start, p.iterations])).toEqual([
      [{ kind: 'pretrain', layer: 0 }, 0, 20],
      [{ kind: 'pretrain', layer: 1 }, 20, 20],
      [{ kind: 'finetune' }, 40, 6],
    ]);
    expect(plan.totalIterations).toBe(46);
    expect(plan.at(19).phaseEnd).toBe(true);
    expect(plan.at(20)).toMatchObject({ phaseIndex: 1, step: 0, epoch: 0 });
    expect(plan.at(45)).toMatchObject({ phase: { kind: 'finetune' }, step: 5, phaseEnd: true, fraction: 0.25 });
    expect(() => plan.at(46)).toThrow(RangeError);
    expect(() => new TrainingPlan(cfg, 2)).toThrow(/partitions/);
  });

  it('partitions cover the data exactly, contiguously', () => {
    const parts = plan.partitions();
    expect(parts[0]!.lo).toBe(0);
    expect(parts.at(-1)!.hi).toBe(1000);
    for (let i = 1; i < parts.length; i++) expect(parts[i]!.lo).toBe(parts[i - 1]!.hi);
    expect(partitionRange(10, 3, 1)).toEqual({ lo: 3, hi: 6 });
  });

  it('schedules ramp momentum and decay the learning rate per whole epoch', () => {
    expect(rampValue({ start: 0.5, end: 0.9, rampEpochs: 4 }, 2)).toBeCloseTo(0.7);
    expect(rampValue({ start: 0.5, end: 0.9, rampEpochs: 4 }, 9)).toBe(0.9);
    expect(decayValue({ start: 1, decay: 0.5, min: 0.1 }, 1.9)).toBe(0.5);
    expect(decayValue({ start: 1, decay: 0.5, min: 0.1 }, 10)).toBe(0.1);
  });
});
