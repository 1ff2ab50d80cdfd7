/**
 * Command-line flags for every CLI (coordinator, `npm start`, the trainer, the
 * Deno worker): `node:util`'s parseArgs with `strict: true` (Node and Deno
 * both have it), plus typed readers for numbers and choices. Every bad flag
 * is a FlagError whose one-line message names the flag: an unknown flag, a
 * missing value, a value that is not a number in range, a value not among
 * the choices. A CLI prints the message on stderr and exits 2.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

export class FlagError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FlagError';
  }
}

type Options = NonNullable<ParseArgsConfig['options']>;
export type FlagValues = Record<string, string | boolean | undefined>;

/** `node:util` parseArgs, strict, no positionals; its errors as one-line FlagErrors naming the flag. */
export function parseFlagValues(argv: readonly string[], options: Options): FlagValues {
  try {
    return parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }).values as FlagValues;
  } catch (e) {
    throw new FlagError(flagMessage(e as Error & { code?: string }));
  }
}

/** parseArgs's messages, shorter: "unknown flag --x", "--port needs a value", "unexpected argument x". */
function flagMessage(e: Error & { code?: string }): string {
  const flag = /'(-{1,2}[^' <]+)/.exec(e.message)?.[1];
  switch (e.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown flag ${flag ?? e.message}`;
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return `unexpected argument ${/'([^']*)'/.exec(e.message)?.[1] ?? e.message} (every value follows its flag: --flag value or --flag=value)`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      if (/does not take an argument/.test(e.message)) return `${flag} takes no value`;
      return `${flag} needs a value${/ambiguous/.test(e.message) ? ` (a value that starts with "-" is written ${flag}=-VALUE)` : ''}`;
    default:
      return e.message.split('\n')[0]!;
  }
}

export interface NumberRange {
  readonly min?: number;
  readonly max?: number;
  /** min is excluded: (min, max] */
  readonly minExclusive?: boolean;
  readonly integer?: boolean;
}

/** A numeric flag's value, undefined when absent; a value that is not a number in range is a FlagError. */
export function numberFlag(values: FlagValues, name: string, range: NumberRange = {}): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const what = range.integer ? 'an integer' : 'a number';
  const lo = range.min === undefined ? '' : `${range.minExclusive ? '(' : '['}${range.min}`;
  const hi = range.max === undefined ? '' : `${range.max}]`;
  const span = lo && hi ? ` in ${lo}, ${hi}` : lo ? (range.minExclusive ? ` > ${range.min}` : ` >= ${range.min}`) : hi ? ` <= ${range.max}` : '';
  const n = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : Number.NaN;
  const ok =
    Number.isFinite(n) &&
    (!range.integer || Number.isInteger(n)) &&
    (range.min === undefined || (range.minExclusive ? n > range.min : n >= range.min)) &&
    (range.max === undefined || n <= range.max);
  if (!ok) throw new FlagError(`--${name} must be ${what}${span}, got ${JSON.stringify(raw)}`);
  return n;
}

/** A flag whose value is one of `choices`, undefined when absent. */
export function choiceFlag<C extends string>(values: FlagValues, name: string, choices: readonly C[]): C | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  if (typeof raw !== 'string' || !(choices as readonly string[]).includes(raw)) {
    throw new FlagError(`--${name} must be ${choices.slice(0, -1).join(', ')}${choices.length > 1 ? ' or ' : ''}${choices.at(-1)}, got ${JSON.stringify(raw)}`);
  }
  return raw as C;
}

/** A string flag's value, undefined when absent; an empty value is a FlagError. */
export function stringFlag(values: FlagValues, name: string): string | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  if (typeof raw !== 'string' || raw === '') throw new FlagError(`--${name} needs a value`);
  return raw;
}

/** A boolean flag: true when given. */
export function boolFlag(values: FlagValues, name: string): boolean {
  return values[name] === true;
}
