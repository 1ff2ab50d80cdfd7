/**
 * Flag parsing of every CLI: each kind of bad flag is a FlagError whose one
 * line names the flag (unknown flag, missing value, bad number, unknown
 * choice, stray argument), and good flags give typed options.
 */
import { describe, expect, it } from 'vitest';
import { parseWorkerFlags } from '../../client/deno/flags.ts';
import { choiceFlag, FlagError, numberFlag, parseFlagValues } from '../../core/flags.ts';
import { parseMainFlags } from '../../coordinator/cli/main-flags.ts';
import { parseServerFlags } from '../../coordinator/cli/server-flags.ts';
import { parseTrainFlags, withOverrides } from '../../coordinator/cli/train-flags.ts';

/** The FlagError message of parsing `argv`, asserting it is one line. */
function refusal(parse: (argv: string[]) => unknown, argv: string[]): string {
  try {
    parse(argv);
  } catch (e) {
    expect(e).toBeInstanceOf(FlagError);
    const m = (e as Error).message;
    expect(m).not.toMatch(/\n/);
    return m;
  }
  throw new Error(`expected ${argv.join(' ')} to be refused`);
}

const URL = ['--coordinator', 'http://127.0.0.1:8080'];

describe('the shared flag readers', () => {
  it('parseArgs errors become one line naming the flag', () => {
    const opts = { port: { type: 'string' }, start: { type: 'boolean' } } as const;
    const p = (argv: string[]) => parseFlagValues(argv, opts);
    expect(refusal(p, ['--bogus'])).toBe('unknown flag --bogus');
    expect(refusal(p, ['--port'])).toMatch(/^--port needs a value/);
    expect(refusal(p, ['--port', '--start'])).toMatch(/^--port needs a value .*--port=-VALUE/);
    expect(refusal(p, ['--start=yes'])).toBe('--start takes no value');
    expect(refusal(p, ['stray'])).toMatch(/^unexpected argument stray/);
    expect(p(['--port=9', '--start'])).toEqual({ port: '9', start: true });
  });

  it('numbers and choices name the flag, the rule and the value', () => {
    expect(numberFlag({ n: '3' }, 'n', { integer: true, min: 1, max: 4 })).toBe(3);
    expect(numberFlag({}, 'n')).toBeUndefined();
    expect(() => numberFlag({ n: 'x' }, 'n')).toThrow('--n must be a number, got "x"');
    expect(() => numberFlag({ n: '' }, 'n')).toThrow(FlagError);
    expect(() => numberFlag({ n: '1e999' }, 'n')).toThrow(FlagError);
    expect(() => numberFlag({ n: '2.5' }, 'n', { integer: true, min: 1, max: 4 })).toThrow('--n must be an integer in [1, 4], got "2.5"');
    expect(() => numberFlag({ n: '0' }, 'n', { min: 0, minExclusive: true, max: 1 })).toThrow('--n must be a number in (0, 1], got "0"');
    expect(() => numberFlag({ n: '-1' }, 'n', { integer: true, min: 0 })).toThrow('--n must be an integer >= 0, got "-1"');
    expect(choiceFlag({ c: 'b' }, 'c', ['a', 'b'])).toBe('b');
    expect(() => choiceFlag({ c: 'z' }, 'c', ['a', 'b', 'c'])).toThrow('--c must be a, b or c, got "z"');
  });
});

describe('coordinator/server.ts flags', () => {
  it('defaults, and typed values', () => {
    expect(parseServerFlags([])).toMatchObject({ port: 8080, host: '127.0.0.1', dataDir: '.tessera', start: false, aggregator: undefined });
    expect(parseServerFlags(['--port', '0', '--aggregator', 'flat', '--fan-in', '8', '--norm-bound', '2.5', '--heartbeat-ms', '500', '--job', 'j.json', '--start'])).toMatchObject({
      port: 0,
      aggregator: 'flat',
      fanIn: 8,
      normBoundPerExample: 2.5,
      heartbeatMs: 500,
      job: 'j.json',
      start: true,
    });
  });

  it('every kind of bad flag is refused by name', () => {
    expect(refusal(parseServerFlags, ['--aggregator', 'trie'])).toBe('--aggregator must be flat or tree, got "trie"');
    expect(refusal(parseServerFlags, ['--port', 'eighty'])).toMatch(/^--port must be an integer in \[0, 65535\]/);
    expect(refusal(parseServerFlags, ['--port', '70000'])).toMatch(/^--port /);
    expect(refusal(parseServerFlags, ['--fan-in', '1'])).toMatch(/^--fan-in /);
    expect(refusal(parseServerFlags, ['--norm-bound', '0'])).toMatch(/^--norm-bound /);
    expect(refusal(parseServerFlags, ['--lease-timeout-ms', 'NaN'])).toMatch(/^--lease-timeout-ms /);
    expect(refusal(parseServerFlags, ['--worker-timeout-ms', '1.5'])).toMatch(/^--worker-timeout-ms /);
    expect(refusal(parseServerFlags, ['--prot', '80'])).toBe('unknown flag --prot');
    expect(refusal(parseServerFlags, ['--data'])).toMatch(/^--data needs a value/);
    expect(refusal(parseServerFlags, ['--start'])).toMatch(/^--start needs --job/);
  });
});

describe('npm start flags', () => {
  it('defaults, and typed values', () => {
    expect(parseMainFlags([])).toEqual({ help: false, port: 8080, host: '127.0.0.1', dataDir: '.tessera', job: undefined, workers: 1, backend: 'auto', adminToken: undefined, exitWhenDone: false });
    expect(parseMainFlags(['--workers', '0', '--backend', 'cpu', '--exit-when-done', '-h'])).toMatchObject({ workers: 0, backend: 'cpu', exitWhenDone: true, help: true });
  });

  it('every kind of bad flag is refused by name', () => {
    expect(refusal(parseMainFlags, ['--workers', 'two'])).toMatch(/^--workers must be an integer in \[0, 64\], got "two"/);
    expect(refusal(parseMainFlags, ['--workers', '-1'])).toMatch(/^--workers needs a value/); // "-1" reads as a flag: --workers=-1 is refused by range
    expect(refusal(parseMainFlags, ['--workers=-1'])).toMatch(/^--workers must be/);
    expect(refusal(parseMainFlags, ['--backend', 'gpu'])).toBe('--backend must be auto, webgpu or cpu, got "gpu"');
    expect(refusal(parseMainFlags, ['--wrokers', '2'])).toBe('unknown flag --wrokers');
    expect(refusal(parseMainFlags, ['--port'])).toMatch(/^--port needs a value/);
    expect(refusal(parseMainFlags, ['8080'])).toMatch(/^unexpected argument 8080/);
  });
});

describe('trainer flags', () => {
  it('config flags become overrides laid over the config file', () => {
    const f = parseTrainFlags(['--layers', '784,32,10', '--train-limit', '1000', '--pretrain-epochs', '0.5', '--seed', '3', '--eval-each-epoch']);
    expect(f.overrides).toEqual({ layers: [784, 32, 10], trainLimit: 1000, seed: 3, pretrain: { epochs: 0.5 } });
    expect(f.evalEachEpoch).toBe(true);
    expect(f.out).toBe('.tessera/train/checkpoint.safetensors');
    expect(withOverrides({ seed: 1, pretrain: { batchSize: 50 } }, f.overrides)).toEqual({ seed: 3, layers: [784, 32, 10], trainLimit: 1000, pretrain: { batchSize: 50, epochs: 0.5 } });
    expect(withOverrides({ pretrain: 7 }, f.overrides)).toMatchObject({ pretrain: 7 }); // left for the schema to name
  });

  it('every kind of bad flag is refused by name', () => {
    expect(refusal(parseTrainFlags, ['--layers', '784,x,10'])).toMatch(/^--layers must be sizes separated by commas/);
    expect(refusal(parseTrainFlags, ['--layers', '784,,10'])).toMatch(/^--layers /);
    expect(refusal(parseTrainFlags, ['--train-limit', 'all'])).toMatch(/^--train-limit must be an integer >= 0, got "all"/);
    expect(refusal(parseTrainFlags, ['--finetune-epochs', 'many'])).toMatch(/^--finetune-epochs /);
    expect(refusal(parseTrainFlags, ['--checkpoint-every', '0'])).toMatch(/^--checkpoint-every /);
    expect(refusal(parseTrainFlags, ['--epochs', '3'])).toBe('unknown flag --epochs');
    expect(refusal(parseTrainFlags, ['--config'])).toMatch(/^--config needs a value/);
  });
});

describe('Deno worker flags', () => {
  it('defaults, and typed values', () => {
    expect(parseWorkerFlags(URL)).toMatchObject({ coordinator: 'http://127.0.0.1:8080', backend: 'auto', throttle: 1, tasksPerLease: 1, maxTasks: undefined, quiet: false });
    expect(parseWorkerFlags([...URL, '--backend=webgpu', '--throttle', '0.5', '--tasks-per-lease', '8', '--max-tasks', '3', '--delay-upload-ms', '0', '--quiet', '--trace'])).toMatchObject({
      backend: 'webgpu',
      throttle: 0.5,
      tasksPerLease: 8,
      maxTasks: 3,
      delayUploadMs: 0,
      quiet: true,
      trace: true,
    });
    expect(parseWorkerFlags(['--help']).help).toBe(true); // --help needs no coordinator
  });

  it('every kind of bad flag is refused by name', () => {
    expect(refusal(parseWorkerFlags, [])).toMatch(/^--coordinator URL is required/);
    expect(refusal(parseWorkerFlags, ['--coordinator', 'localhost:8080'])).toMatch(/^--coordinator must be an http\(s\) URL/);
    expect(refusal(parseWorkerFlags, [...URL, '--backend', 'gpu'])).toBe('--backend must be auto, webgpu or cpu, got "gpu"');
    expect(refusal(parseWorkerFlags, [...URL, '--throttle', '2'])).toMatch(/^--throttle must be a number in \(0, 1\]/);
    expect(refusal(parseWorkerFlags, [...URL, '--throttle', 'half'])).toMatch(/^--throttle /);
    expect(refusal(parseWorkerFlags, [...URL, '--tasks-per-lease', '65'])).toMatch(/^--tasks-per-lease must be an integer in \[1, 64\]/);
    expect(refusal(parseWorkerFlags, [...URL, '--max-tasks', '0'])).toMatch(/^--max-tasks /);
    expect(refusal(parseWorkerFlags, [...URL, '--delay-upload-ms', 'soon'])).toMatch(/^--delay-upload-ms /);
    expect(refusal(parseWorkerFlags, [...URL, '--cache'])).toMatch(/^--cache needs a value/);
    expect(refusal(parseWorkerFlags, [...URL, '--quiet=no'])).toBe('--quiet takes no value');
    expect(refusal(parseWorkerFlags, [...URL, '--tasks-per-lase', '2'])).toBe('unknown flag --tasks-per-lase');
  });
});
