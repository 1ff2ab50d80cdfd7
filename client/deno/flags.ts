/**
 * The Deno worker's flags (client/deno/worker.ts), parsed strictly with
 * `node:util` parseArgs: typed options, or a FlagError naming the bad flag.
 * Runtime-neutral, so Vitest tests it too.
 */
import { boolFlag, choiceFlag, FlagError, numberFlag, parseFlagValues, stringFlag } from '../../core/flags.ts';
import { BACKEND_CHOICES, type BackendChoice } from '../../core/pick-backend.ts';
import { MAX_THREADS } from '../../core/cpu/index.ts';
import { MAX_TASKS_PER_REQUEST } from '../../core/protocol/index.ts';

export const WORKER_USAGE = `usage: deno run -A client/deno/worker.ts --coordinator URL [options]
  --coordinator URL        the coordinator, e.g. http://127.0.0.1:8080 (required)
  --backend B              auto (WebGPU on a real GPU, else CPU), webgpu, cpu (default auto)
  --threads N              CPU backend threads, 1-${MAX_THREADS} (default: the machine's cores; 1 = one thread)
  --cache DIR              keep partitions on disk here (default: in memory)
  --name NAME              shown on the admin page (default deno-HOST-PID)
  --throttle S             share of wall time spent computing, (0, 1] (default 1)
  --tasks-per-lease N      take up to N tasks of an iteration at a time, 1-${MAX_TASKS_PER_REQUEST} (default 1)
  --max-tasks N            stop after N accepted tasks
  --exit-when-done         exit when the job is done
  --quiet                  no progress lines
  --delay-upload-ms N      hold every result back N ms before uploading (a slow link, for tests)
  --trace                  one timing line per task
  -h, --help               this text`;

export interface WorkerFlags {
  readonly help: boolean;
  readonly coordinator: string;
  readonly backend: BackendChoice;
  /** CPU backend threads */
  readonly threads: number;
  readonly cache?: string;
  readonly name?: string;
  readonly throttle: number;
  readonly tasksPerLease: number;
  readonly maxTasks?: number;
  readonly exitWhenDone: boolean;
  readonly quiet: boolean;
  readonly delayUploadMs?: number;
  readonly trace: boolean;
}

export function parseWorkerFlags(argv: readonly string[]): WorkerFlags {
  const f = parseFlagValues(argv, {
    coordinator: { type: 'string' },
    backend: { type: 'string' },
    threads: { type: 'string' },
    cache: { type: 'string' },
    name: { type: 'string' },
    throttle: { type: 'string' },
    'tasks-per-lease': { type: 'string' },
    'max-tasks': { type: 'string' },
    'exit-when-done': { type: 'boolean' },
    quiet: { type: 'boolean' },
    'delay-upload-ms': { type: 'string' },
    trace: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  const help = boolFlag(f, 'help');
  const coordinator = stringFlag(f, 'coordinator');
  if (!coordinator && !help) throw new FlagError('--coordinator URL is required (e.g. --coordinator http://127.0.0.1:8080)');
  if (coordinator && !/^https?:\/\/[^/]/.test(coordinator)) throw new FlagError(`--coordinator must be an http(s) URL, got ${JSON.stringify(coordinator)}`);
  return {
    help,
    coordinator: coordinator ?? '',
    backend: choiceFlag(f, 'backend', BACKEND_CHOICES) ?? 'auto',
    threads: numberFlag(f, 'threads', { integer: true, min: 1, max: MAX_THREADS }) ?? defaultThreads(),
    cache: stringFlag(f, 'cache'),
    name: stringFlag(f, 'name'),
    throttle: numberFlag(f, 'throttle', { min: 0, minExclusive: true, max: 1 }) ?? 1,
    tasksPerLease: numberFlag(f, 'tasks-per-lease', { integer: true, min: 1, max: MAX_TASKS_PER_REQUEST }) ?? 1,
    maxTasks: numberFlag(f, 'max-tasks', { integer: true, min: 1 }),
    exitWhenDone: boolFlag(f, 'exit-when-done'),
    quiet: boolFlag(f, 'quiet'),
    delayUploadMs: numberFlag(f, 'delay-upload-ms', { integer: true, min: 0 }),
    trace: boolFlag(f, 'trace'),
  };
}

/** The machine's cores, at most MAX_THREADS. */
function defaultThreads(): number {
  const n = typeof navigator !== 'undefined' ? navigator.hardwareConcurrency : 1;
  return Math.max(1, Math.min(MAX_THREADS, n || 1));
}
