/**
 * What every Node CLI's entry does the same way: read a job config file, and
 * run main so that an error is one line on stderr, not a stack trace.
 */
import { readFileSync } from 'node:fs';
import { FlagError } from '../../core/flags.ts';

/** A job config file's JSON (checked by the job's schema when the job is created), or an error naming the file. */
export function readJobFile(path: string, flag = '--job'): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`${flag} ${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new Error(`${flag} ${path}: not JSON (${(e as Error).message})`);
  }
}

/** Runs a CLI's main: a bad flag or any other error is one line on stderr and exit status 2 (flags) or 1; TESSERA_DEBUG=1 adds the stack. */
export function runCli(main: () => Promise<void>): void {
  main().catch((e: unknown) => {
    const err = e instanceof Error ? e : new Error(String(e));
    console.error(err instanceof FlagError ? `${err.message} (--help lists the flags)` : err.message);
    if (process.env.TESSERA_DEBUG) console.error(err.stack);
    process.exit(err instanceof FlagError ? 2 : 1);
  });
}
