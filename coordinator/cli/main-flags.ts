/**
 * `npm start`'s flags (coordinator/cli/main.ts), parsed strictly: typed
 * options, or a FlagError naming the bad flag.
 */
import { boolFlag, choiceFlag, numberFlag, parseFlagValues, stringFlag } from '../../core/flags.ts';
import { BACKEND_CHOICES, type BackendChoice } from '../../core/pick-backend.ts';

export const MAIN_USAGE = `usage: npm start -- [options]
  --port N              HTTP port (default 8080)
  --host H              address to listen on (default 127.0.0.1; 0.0.0.0 for other machines)
  --data DIR            state, checkpoints and the worker cache (default .tessera); restart on it to resume
  --job FILE            a JSON job config (partial; the rest from DEFAULT_JOB) instead of the default MNIST DBN;
                        its "training" field picks the mode (sync | local-sgd) and the wire encodings,
                        e.g. bench/configs/spark-dbn-local-sgd.json
  --workers N           local Deno workers to start (default 1; 0 for none)
  --backend B           their backend: auto (WebGPU on a real GPU, else CPU), webgpu, cpu (default auto)
  --admin-token T       set the admin token (also TESSERA_ADMIN_TOKEN); else one is created at the first start
  --exit-when-done      stop everything when the job is done
  -h, --help            this text`;

export interface MainFlags {
  readonly help: boolean;
  readonly port: number;
  readonly host: string;
  readonly dataDir: string;
  readonly job?: string;
  readonly workers: number;
  readonly backend: BackendChoice;
  readonly adminToken?: string;
  readonly exitWhenDone: boolean;
}

export function parseMainFlags(argv: readonly string[]): MainFlags {
  const f = parseFlagValues(argv, {
    port: { type: 'string' },
    host: { type: 'string' },
    data: { type: 'string' },
    job: { type: 'string' },
    workers: { type: 'string' },
    backend: { type: 'string' },
    'admin-token': { type: 'string' },
    'exit-when-done': { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  return {
    help: boolFlag(f, 'help'),
    port: numberFlag(f, 'port', { integer: true, min: 0, max: 65535 }) ?? 8080,
    host: stringFlag(f, 'host') ?? '127.0.0.1',
    dataDir: stringFlag(f, 'data') ?? '.tessera',
    job: stringFlag(f, 'job'),
    workers: numberFlag(f, 'workers', { integer: true, min: 0, max: 64 }) ?? 1,
    backend: choiceFlag(f, 'backend', BACKEND_CHOICES) ?? 'auto',
    adminToken: stringFlag(f, 'admin-token'),
    exitWhenDone: boolFlag(f, 'exit-when-done'),
  };
}
