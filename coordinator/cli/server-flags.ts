/**
 * The coordinator's flags (coordinator/server.ts), parsed strictly: typed
 * options, or a FlagError naming the bad flag.
 */
import { boolFlag, choiceFlag, FlagError, numberFlag, parseFlagValues, stringFlag } from '../../core/flags.ts';
import type { AggregatorKind } from '../aggregate/index.ts';

export const SERVER_USAGE = `usage: tsx coordinator/server.ts [options]
  --port N                 HTTP port (default 8080; 0 picks a free one)
  --host H                 address to listen on (default 127.0.0.1)
  --data DIR               state and checkpoints (default .tessera); restart on it to resume
  --admin-token T          set the admin token (else the stored one, else a new one)
  --job FILE               create a job from this JSON config at start
  --start                  start that job at once
  --lease-timeout-ms N     a lease's deadline
  --heartbeat-ms N         how often workers heartbeat
  --worker-timeout-ms N    a worker silent this long is gone
  --aggregator flat|tree   how results are combined (default tree)
  --fan-in F               the tree's fan-in (default 4)
  --norm-bound B           largest gradient norm per example (default 1e4)
  -h, --help               this text`;

export interface ServerFlags {
  readonly help: boolean;
  readonly port: number;
  readonly host: string;
  readonly dataDir: string;
  readonly adminToken?: string;
  readonly job?: string;
  readonly start: boolean;
  readonly leaseTimeoutMs?: number;
  readonly heartbeatMs?: number;
  readonly workerTimeoutMs?: number;
  readonly aggregator?: AggregatorKind;
  readonly fanIn?: number;
  readonly normBoundPerExample?: number;
}

const MS = { integer: true, min: 1, max: 86_400_000 } as const;

export function parseServerFlags(argv: readonly string[]): ServerFlags {
  const f = parseFlagValues(argv, {
    port: { type: 'string' },
    host: { type: 'string' },
    data: { type: 'string' },
    'admin-token': { type: 'string' },
    job: { type: 'string' },
    start: { type: 'boolean' },
    'lease-timeout-ms': { type: 'string' },
    'heartbeat-ms': { type: 'string' },
    'worker-timeout-ms': { type: 'string' },
    aggregator: { type: 'string' },
    'fan-in': { type: 'string' },
    'norm-bound': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (f.start && f.job === undefined) throw new FlagError('--start needs --job FILE (the job to start)');
  return {
    help: boolFlag(f, 'help'),
    port: numberFlag(f, 'port', { integer: true, min: 0, max: 65535 }) ?? 8080,
    host: stringFlag(f, 'host') ?? '127.0.0.1',
    dataDir: stringFlag(f, 'data') ?? '.tessera',
    adminToken: stringFlag(f, 'admin-token'),
    job: stringFlag(f, 'job'),
    start: boolFlag(f, 'start'),
    leaseTimeoutMs: numberFlag(f, 'lease-timeout-ms', MS),
    heartbeatMs: numberFlag(f, 'heartbeat-ms', MS),
    workerTimeoutMs: numberFlag(f, 'worker-timeout-ms', MS),
    aggregator: choiceFlag(f, 'aggregator', ['flat', 'tree'] as const),
    fanIn: numberFlag(f, 'fan-in', { integer: true, min: 2, max: 1024 }),
    normBoundPerExample: numberFlag(f, 'norm-bound', { min: 0, minExclusive: true }),
  };
}
