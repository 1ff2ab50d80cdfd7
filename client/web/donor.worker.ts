/// <reference lib="webworker" />
/**
 * The donate page's dedicated Web Worker: picks a compute backend (WebGPU
 * on a real GPU, else the CPU backend; core/pick-backend.ts), runs the
 * worker core (GridWorker, client/worker/worker.ts) with the IndexedDB cache,
 * and exposes DonorApi to the page over Comlink. It turns the core's events
 * into snapshots for the page, and draws the filters from the weights blob
 * the core already fetched.
 */
import * as Comlink from 'comlink';
import type { ComputeBackend } from '../../core/backend.ts';
import { pickBackend, type BackendChoice, type PickedBackend } from '../../core/pick-backend.ts';
import { createCpuBackend } from '../../core/cpu/index.ts';
import { tensorShapes } from '../../core/model/params.ts';
import { phaseName } from '../../core/model/plan.ts';
import { decodeWeights, PATHS, type RegisterResponse, type TaskLease } from '../../core/protocol/index.ts';
import { createWebGpuBackend } from '../../core/webgpu/index.ts';
import { GridWorker, type FetchLike, type WorkerEvent } from '../worker/worker.ts';
import type { DonorApi, DonorOptions, DonorSnapshot, DonorState } from './donor-api.ts';
import { extractFilters, type FilterTiles } from './filters.ts';
import { BrowserBlobCache } from './idb-cache.ts';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

const IDLE: DonorSnapshot = {
  state: 'idle',
  message: 'Not started.',
  backend: null,
  adapter: null,
  fallbackReason: null,
  job: null,
  workerId: null,
  tasksDone: 0,
  examplesDone: 0,
  examplesPerSecond: 0,
  bytesUp: 0,
  bytesDown: 0,
  computeMs: 0,
  donatedMs: 0,
  retryInMs: null,
  weightsVersion: null,
  leave: null,
  cacheHits: 0,
};

let snap: Mutable<DonorSnapshot> = { ...IDLE };
let listener: ((s: DonorSnapshot) => void) | null = null;
let worker: GridWorker | null = null;
let backend: ComputeBackend | null = null;
const cache = new BrowserBlobCache();
/** the lease being computed and the latest weights seen (hash, version, config) */
let lease: TaskLease | null = null;
let latest: TaskLease | null = null;
let token: string | null = null;
/** donated time: accumulated ms plus the running stretch since `since` */
let donated = 0;
let since: number | null = null;
let filterMemo: { hash: string; n: number; tiles: FilterTiles } | null = null;

// ------------------------------------------------------------ snapshots

let pushTimer: ReturnType<typeof setTimeout> | null = null;
let lastPush = 0;

function publish(now = false): void {
  const go = (): void => {
    pushTimer = null;
    lastPush = Date.now();
    listener?.(current());
  };
  if (now) {
    if (pushTimer) clearTimeout(pushTimer);
    return go();
  }
  if (pushTimer) return;
  pushTimer = setTimeout(go, Math.max(0, 250 - (Date.now() - lastPush)));
}

function current(): DonorSnapshot {
  const stats = worker?.stats;
  return {
    ...snap,
    ...(stats ? { tasksDone: stats.tasksDone, examplesDone: stats.examplesDone, examplesPerSecond: stats.examplesPerSecond, bytesUp: stats.bytesUp, bytesDown: stats.bytesDown } : {}),
    donatedMs: donated + (since === null ? 0 : Date.now() - since),
    workerId: worker?.workerId ?? null,
    leave: token ? { token, leaseId: lease?.leaseId ?? null } : null,
    cacheHits: cache.hits,
  };
}

function set(state: DonorState, message: string, extra: Partial<Mutable<DonorSnapshot>> = {}): void {
  snap = { ...snap, state, message, retryInMs: null, ...extra };
  publish(state !== 'running');
}

function clock(on: boolean): void {
  if (on && since === null) since = Date.now();
  if (!on && since !== null) {
    donated += Date.now() - since;
    since = null;
  }
}

// A clock tick keeps "time donated" moving on the page while tasks are long.
setInterval(() => {
  if (since !== null) publish();
}, 1000);

// ------------------------------------------------------------ backend

/** The shared picker (core/pick-backend.ts): WebGPU on a real GPU, the CPU backend on a software adapter (SwiftShader) or without WebGPU. */
function chooseBackend(choice: BackendChoice, threads: number): Promise<PickedBackend> {
  return pickBackend(choice, {
    gpu: (self.navigator as Navigator & { gpu?: GPU }).gpu,
    // the CPU backend's helper threads are Web Workers of this worker, sharing
    // its WebAssembly memory (only where the page is cross-origin isolated)
    createCpu: () => createCpuBackend({ threads }),
    createWebGpu: (adapter) => createWebGpuBackend({ adapter }),
    forceHint: 'the backend "WebGPU only" forces WebGPU',
  });
}

// ------------------------------------------------------------ events

const IDLE_REASON: Record<string, string> = {
  waiting: 'Every task of this iteration is out; waiting for the next iteration.',
  paused: 'The job is paused by its operator; waiting.',
  'no-job': 'No job is running on the grid right now; waiting for one.',
  done: 'The job is finished. Thank you! Waiting for the next job.',
};

function onEvent(e: WorkerEvent): void {
  switch (e.type) {
    case 'registered':
      set('waiting', `Registered as ${e.workerId}; asking for a task.`);
      return;
    case 'task': {
      lease = e.lease;
      latest = e.lease;
      const job = { id: e.lease.jobId, name: e.lease.config.name, iteration: e.lease.iteration, totalIterations: null, phase: phaseName(e.lease.phase) };
      set('running', `Computing ${job.phase}, iteration ${e.lease.iteration}, partition ${e.lease.partition.index} (${e.lease.sample.count} examples).`, {
        job,
        weightsVersion: e.lease.weights.version,
      });
      return;
    }
    case 'done':
      lease = null;
      snap.computeMs += e.seconds * 1000;
      snap.message = `Task ${e.taskId} accepted (${e.ack.covered} of ${e.ack.of} done for iteration ${e.ack.iteration}).`;
      publish();
      return;
    case 'rejected':
      lease = null;
      snap.message = `Task ${e.taskId} was refused (${e.status} ${e.error.error}): ${e.error.detail}`;
      publish();
      return;
    case 'idle':
      if (snap.state === 'paused') return;
      set('waiting', IDLE_REASON[e.reason] ?? `Waiting (${e.reason}).`);
      return;
    case 'offline':
      lease = null;
      set('offline', `The coordinator cannot be reached (${e.message}); your work so far is safe.`, { retryInMs: e.retryInMs });
      return;
    case 'paused':
      clock(false);
      set('paused', 'Paused. Press Resume to continue.');
      return;
    case 'resumed':
      clock(true);
      set('waiting', 'Resumed; asking for a task.');
      return;
    case 'stopped':
      clock(false);
      lease = null;
      return;
  }
}

/** fetch that remembers the worker token from the registration answer (the page needs it to hand the lease back on close). */
const recordingFetch: FetchLike = async (input, init) => {
  const res = await fetch(input, init);
  if (res.ok && init?.method === 'POST' && new URL(input).pathname === PATHS.register) {
    try {
      token = ((await res.clone().json()) as RegisterResponse).token;
      publish(true); // the page needs the token at once: it may close before the first task ends
    } catch {
      // GridWorker reports the malformed answer itself
    }
  }
  return res;
};

// ------------------------------------------------------------ the API

const api: DonorApi = {
  async start(opts: DonorOptions): Promise<DonorSnapshot> {
    if (worker) await api.stop();
    snap = { ...IDLE, state: 'starting', message: 'Choosing a compute backend…' };
    donated = 0;
    since = null;
    token = null;
    publish(true);
    try {
      const picked = await chooseBackend(opts.backend, opts.threads);
      backend = picked.backend;
      snap = { ...snap, backend: backend.kind, adapter: backend.adapter, fallbackReason: picked.fallbackReason, message: 'Registering with the coordinator…' };
      publish(true);
    } catch (e) {
      set('error', e instanceof Error ? e.message : String(e));
      return current();
    }
    const w = new GridWorker({
      coordinator: opts.coordinator,
      backend,
      name: opts.name,
      runtime: 'browser',
      cache,
      fetch: recordingFetch,
      throttle: opts.throttle,
      onEvent,
    });
    worker = w;
    clock(true);
    void w.start().then(
      () => {
        if (worker === w && snap.state !== 'error') set('stopped', 'Stopped. Thank you for donating!');
      },
      (e: unknown) => {
        clock(false);
        set('error', `The worker stopped: ${e instanceof Error ? e.message : String(e)}`);
      },
    );
    return current();
  },

  async pause(): Promise<void> {
    worker?.pause();
  },

  async resume(): Promise<void> {
    worker?.resume();
  },

  async stop(): Promise<void> {
    const w = worker;
    if (!w) return;
    set('stopped', 'Stopping: handing the task back…');
    await w.stop();
    clock(false);
    backend?.dispose();
    backend = null;
    worker = null;
    token = null;
    set('stopped', 'Stopped. Thank you for donating!');
  },

  async setThrottle(share: number): Promise<void> {
    worker?.setThrottle(share);
  },

  async snapshot(): Promise<DonorSnapshot> {
    return current();
  },

  async subscribe(fn: (s: DonorSnapshot) => void): Promise<void> {
    listener = fn;
    publish(true);
  },

  async filters(n: number): Promise<FilterTiles | null> {
    const l = latest;
    if (!l) return null;
    if (filterMemo?.hash === l.weights.hash && filterMemo.n === n) return filterMemo.tiles;
    const bytes = worker?.weightsBlob(l.weights.hash);
    if (!bytes) return filterMemo?.tiles ?? null;
    const { params } = decodeWeights(bytes, tensorShapes(l.config));
    const W = params.get('rbm0.W') ?? params.get('out.W');
    if (!W) return null;
    const V = l.config.layers[0]!;
    const tiles = extractFilters(W, V, W.length / V, n);
    filterMemo = { hash: l.weights.hash, n, tiles };
    return tiles;
  },
};

Comlink.expose(api);
