/**
 * A training job's configuration and its validation. A config that makes no
 * sense is rejected with every problem listed, each naming its field, so a
 * form can show the message next to the field.
 */
import { parseTrainingConfig, type TrainingConfig } from './training.ts';

/** Linear ramp from `start` to `end` over `rampEpochs`, then constant (momentum). */
export interface RampSchedule {
  readonly start: number;
  readonly end: number;
  readonly rampEpochs: number;
}

/** `start * decay^epoch`, never below `min` (learning rate). */
export interface DecaySchedule {
  readonly start: number;
  readonly decay: number;
  readonly min: number;
}

export interface PhaseConfig {
  /** Passes over the training set (per layer, for pre-training). */
  readonly epochs: number;
  /** Examples per iteration, over all partitions together (sample fraction = batchSize / N). */
  readonly batchSize: number;
  readonly learningRate: DecaySchedule;
  readonly momentum: RampSchedule;
  /** L2 weight cost on weights (not biases). */
  readonly weightCost: number;
}

export interface JobConfig {
  readonly name: string;
  /** [visible, hidden..., classes], e.g. [784, 500, 500, 2000, 10]. */
  readonly layers: readonly number[];
  /** Use the first trainLimit training examples (0 = all). */
  readonly trainLimit: number;
  /** Evaluate on the first testLimit test examples (0 = all). */
  readonly testLimit: number;
  /** Contiguous partitions of the training set; each iteration has one task per partition. */
  readonly partitions: number;
  readonly seed: number;
  readonly pretrain: PhaseConfig;
  readonly finetune: PhaseConfig;
  /** Checkpoint every this many iterations (and at every phase end). */
  readonly checkpointEvery: number;
  /** The training mode and wire encodings (training.ts); absent: synchronous, float32 both ways. */
  readonly training?: TrainingConfig;
}

export interface ConfigIssue {
  readonly field: string;
  readonly message: string;
}

export class ConfigError extends Error {
  readonly issues: readonly ConfigIssue[];
  constructor(issues: readonly ConfigIssue[]) {
    super(`invalid job config: ${issues.map((i) => `${i.field}: ${i.message}`).join('; ')}`);
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

/**
 * The Spark talk's network on all of MNIST, with the schedule that took the
 * in-process CPU trainer to 1.46% test error after 9 fine-tuning epochs
 * (bench/README.md, bench/configs/spark-dbn.json).
 */
export const DEFAULT_JOB: JobConfig = {
  name: 'mnist-dbn',
  layers: [784, 500, 500, 2000, 10],
  trainLimit: 0,
  testLimit: 0,
  partitions: 6,
  seed: 1,
  pretrain: {
    epochs: 2,
    batchSize: 100,
    learningRate: { start: 0.1, decay: 1, min: 0.1 },
    momentum: { start: 0.5, end: 0.9, rampEpochs: 1 },
    weightCost: 0.0002,
  },
  finetune: {
    epochs: 20,
    batchSize: 100,
    learningRate: { start: 0.3, decay: 0.93, min: 0.01 },
    momentum: { start: 0.5, end: 0.9, rampEpochs: 2 },
    weightCost: 0.00001,
  },
  checkpointEvery: 200,
};

type Json = unknown;

function isObject(v: Json): v is Record<string, Json> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Validates an untrusted config (from JSON) and fills omitted fields from
 * `base`. Throws ConfigError listing every problem.
 */
export function parseJobConfig(input: Json, base: JobConfig = DEFAULT_JOB): JobConfig {
  const issues: ConfigIssue[] = [];
  if (!isObject(input)) throw new ConfigError([{ field: '', message: 'expected a JSON object' }]);
  const known = new Set([...Object.keys(base), 'training']);
  for (const k of Object.keys(input)) if (!known.has(k)) issues.push({ field: k, message: 'unknown field' });

  const num = (obj: Record<string, Json>, key: string, path: string, dflt: number, check: (n: number) => string | null): number => {
    const v = obj[key];
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      issues.push({ field: path, message: `expected a finite number, got ${JSON.stringify(v)}` });
      return dflt;
    }
    const problem = check(v);
    if (problem) issues.push({ field: path, message: problem });
    return v;
  };
  const int = (lo: number, hi: number) => (n: number) =>
    Number.isInteger(n) && n >= lo && n <= hi ? null : `expected an integer in [${lo}, ${hi}], got ${n}`;
  const real = (lo: number, hi: number, openLo = false) => (n: number) =>
    (openLo ? n > lo : n >= lo) && n <= hi ? null : `expected a number in ${openLo ? '(' : '['}${lo}, ${hi}], got ${n}`;

  const sub = (obj: Record<string, Json>, key: string, path: string): Record<string, Json> => {
    const v = obj[key];
    if (v === undefined) return {};
    if (!isObject(v)) {
      issues.push({ field: path, message: 'expected an object' });
      return {};
    }
    return v;
  };

  let name = base.name;
  if (input.name !== undefined) {
    if (typeof input.name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$/.test(input.name)) {
      issues.push({ field: 'name', message: 'expected 1-64 letters, digits, spaces, ".", "_" or "-"' });
    } else name = input.name;
  }

  let layers = base.layers;
  if (input.layers !== undefined) {
    const l = input.layers;
    if (!Array.isArray(l) || l.length < 3 || l.length > 12) {
      issues.push({ field: 'layers', message: 'expected [visible, hidden..., classes] with 3 to 12 sizes' });
    } else if (!l.every((n) => typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65536)) {
      issues.push({ field: 'layers', message: 'every size must be an integer in [1, 65536]' });
    } else {
      layers = l as number[];
      if (layers[layers.length - 1]! < 2) issues.push({ field: 'layers', message: 'the output layer needs at least 2 classes' });
      let params = 0;
      for (let i = 0; i + 1 < layers.length; i++) params += layers[i]! * layers[i + 1]!;
      if (params > 64_000_000) issues.push({ field: 'layers', message: `${params} weights is more than the 64,000,000 allowed` });
    }
  }

  const phase = (key: 'pretrain' | 'finetune'): PhaseConfig => {
    const o = sub(input, key, key);
    const b = base[key];
    for (const k of Object.keys(o)) if (!(k in b)) issues.push({ field: `${key}.${k}`, message: 'unknown field' });
    const lr = sub(o, 'learningRate', `${key}.learningRate`);
    const mo = sub(o, 'momentum', `${key}.momentum`);
    const learningRate: DecaySchedule = {
      start: num(lr, 'start', `${key}.learningRate.start`, b.learningRate.start, real(0, 10, true)),
      decay: num(lr, 'decay', `${key}.learningRate.decay`, b.learningRate.decay, real(0, 1, true)),
      min: num(lr, 'min', `${key}.learningRate.min`, b.learningRate.min, real(0, 10)),
    };
    const momentum: RampSchedule = {
      start: num(mo, 'start', `${key}.momentum.start`, b.momentum.start, real(0, 0.999)),
      end: num(mo, 'end', `${key}.momentum.end`, b.momentum.end, real(0, 0.999)),
      rampEpochs: num(mo, 'rampEpochs', `${key}.momentum.rampEpochs`, b.momentum.rampEpochs, real(0, 1000)),
    };
    return {
      epochs: num(o, 'epochs', `${key}.epochs`, b.epochs, real(0, 10000)),
      batchSize: num(o, 'batchSize', `${key}.batchSize`, b.batchSize, int(1, 1_000_000)),
      learningRate,
      momentum,
      weightCost: num(o, 'weightCost', `${key}.weightCost`, b.weightCost, real(0, 1)),
    };
  };

  const cfg: JobConfig = {
    name,
    layers,
    trainLimit: num(input, 'trainLimit', 'trainLimit', base.trainLimit, int(0, 100_000_000)),
    testLimit: num(input, 'testLimit', 'testLimit', base.testLimit, int(0, 100_000_000)),
    partitions: num(input, 'partitions', 'partitions', base.partitions, int(1, 4096)),
    seed: num(input, 'seed', 'seed', base.seed, int(0, 0xffffffff)),
    pretrain: phase('pretrain'),
    finetune: phase('finetune'),
    checkpointEvery: num(input, 'checkpointEvery', 'checkpointEvery', base.checkpointEvery, int(1, 1_000_000)),
    ...(input.training !== undefined ? { training: parseTrainingConfig(input.training, issues, base.training) } : base.training ? { training: base.training } : {}),
  };
  if (cfg.pretrain.epochs === 0 && cfg.finetune.epochs === 0) {
    issues.push({ field: 'finetune.epochs', message: 'pre-training and fine-tuning both have 0 epochs: nothing to train' });
  }
  if (issues.length) throw new ConfigError(issues);
  return cfg;
}
