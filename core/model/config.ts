/**
 * A training job's configuration: its schema (valibot), the type derived
 * from it, and its validation. A config that makes no sense is rejected with
 * every problem listed, each naming its field, so a form can show the
 * message next to the field.
 */
import * as v from 'valibot';
import { intIn, isPlainObject, parseWith, realIn, strictRecord, ValidationError, type FieldIssue } from '../schemas.ts';
import { TRAINING_DEFAULTS, TrainingConfigSchema } from './training.ts';

/** Linear ramp from `start` to `end` over `rampEpochs`, then constant (momentum). */
export const RampScheduleSchema = v.pipe(
  strictRecord({
    start: realIn(0, 0.999),
    end: realIn(0, 0.999),
    rampEpochs: realIn(0, 1000),
  }),
  v.readonly(),
);
export type RampSchedule = v.InferOutput<typeof RampScheduleSchema>;

/** `start * decay^epoch`, never below `min` (learning rate). */
export const DecayScheduleSchema = v.pipe(
  strictRecord({
    start: realIn(0, 10, true),
    decay: realIn(0, 1, true),
    min: realIn(0, 10),
  }),
  v.readonly(),
);
export type DecaySchedule = v.InferOutput<typeof DecayScheduleSchema>;

export const PhaseConfigSchema = v.pipe(
  strictRecord({
    /** Passes over the training set (per layer, for pre-training). */
    epochs: realIn(0, 10000),
    /** Examples per iteration, over all partitions together (sample fraction = batchSize / N). */
    batchSize: intIn(1, 1_000_000),
    learningRate: DecayScheduleSchema,
    momentum: RampScheduleSchema,
    /** L2 weight cost on weights (not biases). */
    weightCost: realIn(0, 1),
  }),
  v.readonly(),
);
export type PhaseConfig = v.InferOutput<typeof PhaseConfigSchema>;

const MAX_WEIGHTS = 64_000_000;

/** [visible, hidden..., classes]: 3 to 12 integer sizes, at least 2 classes, at most 64M weights; one issue at most. */
const LayersSchema = v.pipe(
  v.array(v.unknown(), 'expected [visible, hidden..., classes] with 3 to 12 sizes'),
  v.rawCheck(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const l = dataset.value;
    let message: string | null = null;
    if (l.length < 3 || l.length > 12) message = 'expected [visible, hidden..., classes] with 3 to 12 sizes';
    else if (!l.every((n) => typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65536)) message = 'every size must be an integer in [1, 65536]';
    else {
      const sizes = l as number[];
      let params = 0;
      for (let i = 0; i + 1 < sizes.length; i++) params += sizes[i]! * sizes[i + 1]!;
      if (sizes[sizes.length - 1]! < 2) message = 'the output layer needs at least 2 classes';
      else if (params > MAX_WEIGHTS) message = `${params} weights is more than the 64,000,000 allowed`;
    }
    if (message) addIssue({ message });
  }),
  v.transform((l) => l as number[]),
  v.readonly(),
);

export const VERIFICATION_MODES = ['verified', 'off'] as const;
export const AGGREGATIONS = ['sum', 'median', 'trimmed-mean', 'centered-clip'] as const;

export const JobConfigSchema = v.pipe(
  strictRecord({
    name: v.pipe(
      v.string('expected 1-64 letters, digits, spaces, ".", "_" or "-"'),
      v.regex(/^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$/, 'expected 1-64 letters, digits, spaces, ".", "_" or "-"'),
    ),
    /** [visible, hidden..., classes], e.g. [784, 500, 500, 2000, 10]. */
    layers: LayersSchema,
    /** Use the first trainLimit training examples (0 = all). */
    trainLimit: intIn(0, 100_000_000),
    /** Evaluate on the first testLimit test examples (0 = all). */
    testLimit: intIn(0, 100_000_000),
    /** Contiguous partitions of the training set; each iteration has one task per partition. */
    partitions: intIn(1, 4096),
    seed: intIn(0, 0xffffffff),
    pretrain: PhaseConfigSchema,
    finetune: PhaseConfigSchema,
    /** Checkpoint every this many iterations (and at every phase end). */
    checkpointEvery: intIn(1, 1_000_000),
    /**
     * How results are checked by recomputation (coordinator/trust/):
     * 'verified' (a sampled result counts only once the coordinator's
     * recomputation agrees) or 'off'.
     */
    verification: v.picklist(VERIFICATION_MODES, `expected one of ${VERIFICATION_MODES.map((m) => `"${m}"`).join(', ')}`),
    /** How an iteration's results are combined: 'sum' (exact) or a robust rule (coordinator/aggregate/robust.ts). */
    aggregation: v.picklist(AGGREGATIONS, `expected one of ${AGGREGATIONS.map((m) => `"${m}"`).join(', ')}`),
    /**
     * The training mode and wire encodings (training.ts); absent: synchronous,
     * float32 both ways. Omitted fields of a given one come from TRAINING_DEFAULTS.
     */
    training: v.optional(TrainingConfigSchema),
  }),
  v.forward(
    v.check((c) => c.pretrain.epochs > 0 || c.finetune.epochs > 0, 'pre-training and fine-tuning both have 0 epochs: nothing to train'),
    ['finetune', 'epochs'],
  ),
  v.readonly(),
);
export type JobConfig = v.InferOutput<typeof JobConfigSchema>;

export type ConfigIssue = FieldIssue;

export class ConfigError extends ValidationError {
  constructor(issues: readonly ConfigIssue[]) {
    super('invalid job config', issues);
    this.name = 'ConfigError';
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
  verification: 'verified',
  aggregation: 'sum',
};

/** `input` laid over `base`: objects merge key by key, anything else (arrays included) replaces. */
function overlay(base: unknown, input: unknown): unknown {
  if (input === undefined) return base;
  if (!isPlainObject(base) || !isPlainObject(input)) return input;
  const out: Record<string, unknown> = { ...base };
  for (const [k, x] of Object.entries(input)) {
    // a JSON "__proto__" key stays a plain (unknown) field, never the prototype
    Object.defineProperty(out, k, { value: overlay(Object.hasOwn(base, k) ? base[k] : undefined, x), enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/**
 * Validates an untrusted config (from JSON) and fills omitted fields from
 * `base`. Throws ConfigError listing every problem.
 */
export function parseJobConfig(input: unknown, base: JobConfig = DEFAULT_JOB): JobConfig {
  if (!isPlainObject(input)) throw new ConfigError([{ field: '', message: 'expected a JSON object' }]);
  try {
    // a given `training` is laid over the base job's, or over the training defaults
    const full = isPlainObject(input.training) ? { ...input, training: overlay(base.training ?? TRAINING_DEFAULTS, input.training) } : input;
    return parseWith(JobConfigSchema, overlay(base, full), 'invalid job config');
  } catch (e) {
    if (e instanceof ValidationError) throw new ConfigError(e.issues);
    throw e;
  }
}
