/**
 * The worker loop, runtime-neutral (Deno CLI, browser Web Worker, Node tests):
 * register, lease a task, fetch the weights and partition blobs by content
 * hash (through a BlobCache: disk in Deno, IndexedDB in browsers, memory
 * here), compute, upload the result, heartbeat; back off while the
 * coordinator is away; give the lease back on stop. Pausable, stoppable,
 * throttle-able; reports progress through `onEvent`.
 *
 * Only web-standard APIs: fetch, crypto.subtle, setTimeout, AbortController.
 * The cache, the options and events, and the HTTP helpers are in files of
 * their own beside this one; GridWorker, one state machine, stays whole here
 * (about 450 lines of the file's 500).
 */
import { tensorShapes, type Params } from '../../core/model/params.ts';
import {
  blobHash,
  decodeWeights,
  encodeResult,
  PATHS,
  SAFETENSORS_TYPE,
  WORKER_HEADER,
  type LeaseResponse,
  type RegisterResponse,
  type ResultAck,
  type TaskLease,
  type WorkerStats,
} from '../../core/protocol/index.ts';
import { sampleRange } from '../../core/rng.ts';
import { decodePartition, type Partition } from '../../core/protocol/partition.ts';
import { addResults, batchFromPartition, computeTasks, type ExampleBatch, type TaskResult } from '../../core/task.ts';
import { computeLocalTask } from '../../core/local-sgd.ts';
import type { JobConfig } from '../../core/model/config.ts';
import { TrainingPlan } from '../../core/model/plan.ts';
import { LocalSgdPlan } from '../../core/model/training.ts';
import { encodeTrainingResult } from '../../core/protocol/encoded-results.ts';
import { WeightsHolder } from './weights-holder.ts';
import { MemoryBlobCache, type BlobCache } from './cache.ts';
import { coordinatorError, CoordinatorError, readBytes, sleep } from './net.ts';
import type { FetchLike, WorkerEvent, WorkerOptions } from './options.ts';

// The worker loop's public face: what its users (the Deno CLI, the browser's Web Worker, tests) import with GridWorker.
export { MemoryBlobCache, type BlobCache } from './cache.ts';
export { CoordinatorError } from './net.ts';
export type { FetchLike, WorkerEvent, WorkerOptions } from './options.ts';

/** A value decoded from a downloaded blob, and the check of that blob's hash (see GridWorker.blob). */
interface Verified<T> {
  readonly value: T;
  readonly verified: Promise<void>;
}

/** Tries of one result upload refused with 429 or 5xx, or lost on the network, and the first retry's delay (doubling). */
const UPLOAD_TRIES = 5;
const UPLOAD_RETRY_MS = 100;

export class GridWorker {
  private readonly cache: BlobCache;
  private readonly fetchFn: FetchLike;
  private readonly base: string;
  private reg: RegisterResponse | null = null;
  private stopping = false;
  private paused = false;
  private resumeGate: (() => void) | null = null;
  private readonly stopCtl = new AbortController();
  /**
   * set when the coordinator says this worker left (its page closed, with
   * the token): the loop ends instead of registering again
   */
  private leftGrid = false;
  /** the leases being computed (several for a bundle) */
  private current: readonly TaskLease[] = [];
  private heartbeat: ReturnType<typeof setInterval> | null = null;
  private throttle: number;
  private running: Promise<void> | null = null;
  private decodedWeights: { hash: string; bytes: Uint8Array; params: Params; verified: Promise<void> } | null = null;
  /** a buffer for the next weights download (see weights()) */
  private spareWeights: Uint8Array | null = null;
  /** buffers for result bodies, reused once their upload is over */
  private readonly uploadBuffers: Uint8Array[] = [];
  private decodedParts = new Map<string, Verified<Partition>>();
  private readonly window: { at: number; examples: number }[] = [];
  private readonly s = { tasksDone: 0, examplesDone: 0, bytesUp: 0, bytesDown: 0 };

  constructor(private readonly opts: WorkerOptions) {
    this.cache = opts.cache ?? new MemoryBlobCache();
    this.fetchFn = opts.fetch ?? ((input, init) => fetch(input, init));
    this.base = opts.coordinator.replace(/\/+$/, '');
    this.throttle = opts.throttle ?? 1;
  }

  get workerId(): string | null {
    return this.reg?.workerId ?? null;
  }

  get stats(): WorkerStats {
    const now = Date.now();
    while (this.window.length && now - this.window[0]!.at > 30_000) this.window.shift();
    let ex = 0;
    for (const w of this.window) ex += w.examples;
    const span = this.window.length ? Math.max(1, now - this.window[0]!.at) / 1000 : 1;
    return { ...this.s, examplesPerSecond: this.window.length > 1 ? ex / span : 0 };
  }

  private emit(e: WorkerEvent): void {
    this.opts.onEvent?.(e);
  }

  /** Runs until stop(); resolves when the worker has left. */
  start(): Promise<void> {
    this.running ??= this.loop().finally(() => this.emit({ type: 'stopped' }));
    return this.running;
  }

  pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.emit({ type: 'paused' });
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.resumeGate?.();
    this.emit({ type: 'resumed' });
  }

  /** (0, 1]: fraction of wall time spent computing. */
  setThrottle(x: number): void {
    this.throttle = Math.min(1, Math.max(0.01, x));
  }

  /** Gives back the current lease, leaves the grid, ends the loop. */
  async stop(): Promise<void> {
    if (this.stopping) return this.running ?? undefined;
    this.stopping = true;
    this.stopCtl.abort();
    this.resumeGate?.();
    await this.giveBack(this.current);
    await this.running;
  }

  private headers(json: boolean): Record<string, string> {
    const h: Record<string, string> = {};
    if (this.reg) h[WORKER_HEADER] = this.reg.token;
    if (json) h['content-type'] = 'application/json';
    return h;
  }

  private async request(path: string, init: RequestInit): Promise<Response> {
    const res = await this.fetchFn(this.base + path, init);
    if (!res.ok && res.status !== 304) {
      throw await coordinatorError(res);
    }
    return res;
  }

  private async post<T>(path: string, body: unknown, signal?: AbortSignal): Promise<T> {
    const text = body === undefined ? '' : JSON.stringify(body);
    this.s.bytesUp += text.length;
    const res = await this.request(path, { method: 'POST', headers: this.headers(true), body: text, signal });
    const out = await res.text();
    this.s.bytesDown += out.length;
    return JSON.parse(out) as T;
  }

  private async register(): Promise<void> {
    const b = this.opts.backend;
    this.reg = null;
    this.reg = await this.post<RegisterResponse>(PATHS.register, {
      name: this.opts.name,
      runtime: this.opts.runtime,
      backend: b.kind,
      adapter: b.adapter,
      cached: await this.cache.partitions(),
    });
    this.emit({ type: 'registered', workerId: this.reg.workerId });
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = setInterval(() => void this.beat(), this.reg.heartbeatMs);
  }

  private async beat(): Promise<void> {
    if (!this.reg || this.stopping) return;
    try {
      await this.post(PATHS.heartbeat, { stats: this.stats, cached: await this.cache.partitions() });
    } catch {
      // the loop notices an absent coordinator on its own requests
    }
  }

  private async loop(): Promise<void> {
    const backoff = this.opts.backoffMs ?? { initial: 250, max: 10_000 };
    let wait = backoff.initial;
    const offline = async (e: unknown): Promise<void> => {
      const retryInMs = Math.round(wait * (0.75 + Math.random() * 0.5));
      this.emit({ type: 'offline', message: (e as Error).message, retryInMs });
      await sleep(retryInMs, this.stopCtl.signal);
      wait = Math.min(backoff.max, wait * 2);
    };
    try {
      while (!this.stopping && !this.leftGrid) {
        if (this.paused) {
          await new Promise<void>((r) => (this.resumeGate = r));
          this.resumeGate = null;
          continue;
        }
        try {
          if (!this.reg) await this.register();
          const r = await this.post<LeaseResponse>(
            PATHS.lease,
            { cached: await this.cache.partitions(), waitMs: this.opts.leaseWaitMs ?? 20_000, ...(this.opts.tasksPerLease ? { maxTasks: this.opts.tasksPerLease } : {}) },
            this.stopCtl.signal,
          );
          wait = backoff.initial;
          if (!r.lease) {
            this.emit({ type: 'idle', reason: r.reason });
            if (r.reason === 'done' && this.opts.exitWhenDone) break;
            await sleep(r.retryAfterMs, this.stopCtl.signal);
            continue;
          }
          await this.runTask(r.lease, r.more ?? []);
          if (this.opts.maxTasks !== undefined && this.s.tasksDone >= this.opts.maxTasks) break;
        } catch (e) {
          if (this.stopping) break;
          if (e instanceof CoordinatorError && e.status === 401) {
            this.reg = null;
            if (e.body.error === 'worker-left') this.leftGrid = true;
            continue; // the coordinator forgot us: register again (unless we left)
          }
          if (e instanceof CoordinatorError && e.status === 403 && e.body.error === 'banned') {
            // the coordinator refuses this worker: stop (registering again would start it untrusted, from a marked source)
            this.emit({ type: 'offline', message: e.body.detail, retryInMs: 0 });
            break;
          }
          if (e instanceof CoordinatorError && e.status < 500 && e.status !== 429) {
            // a request of ours was refused (e.g. the weights of an iteration that just ended): go on shortly
            await sleep(100, this.stopCtl.signal);
            continue;
          }
          await offline(e);
        }
      }
    } finally {
      if (this.leftGrid) this.emit({ type: 'idle', reason: 'left' });
      await this.inflight;
      if (this.heartbeat) clearInterval(this.heartbeat);
      if (this.reg) await this.post(PATHS.leave, undefined).catch(() => undefined);
    }
  }

  /**
   * A blob by hash: a partition from the cache, else downloaded (into `into`
   * when it has room). Its SHA-256 is checked while the task computes
   * (WebCrypto hashes off the main thread): `verified` rejects on a
   * mismatch, and runTask uploads nothing computed from a blob before it is
   * verified. Only a verified download is cached; a cached copy that fails
   * (a damaged disk cache) is deleted, so the next try downloads it.
   */
  private async blob(hash: string, kind: 'weights' | 'partition', into?: Uint8Array): Promise<Verified<Uint8Array>> {
    const hit = kind === 'partition' ? await this.cache.get(hash) : undefined;
    if (hit) {
      const verified = blobHash(hit).then(async (got) => {
        if (got === hash) return;
        await this.cache.delete(hash);
        throw new Error(`cached blob ${hash} has SHA-256 ${got}: the cache is damaged; deleted it, the next try downloads it again`);
      });
      verified.catch(() => undefined); // awaited by runTask
      return { value: hit, verified };
    }
    const res = await this.request(PATHS.blob(hash), { method: 'GET', signal: this.stopCtl.signal });
    const bytes = await readBytes(res, into);
    this.s.bytesDown += bytes.length;
    const verified = blobHash(bytes).then(async (got) => {
      if (got !== hash) throw new Error(`blob ${hash} arrived with SHA-256 ${got}: corrupted in transit or by a proxy`);
      if (kind === 'partition') await this.cache.put(hash, bytes);
    });
    verified.catch(() => undefined); // awaited by runTask; a task that fails earlier leaves it
    return { value: bytes, verified };
  }

  /**
   * The weights of a lease, decoded (views of the blob). A new version is
   * downloaded into the buffer the version before last used: nothing holds
   * it any more (tasks run one at a time), and writing reused memory is
   * several times faster than fresh pages.
   */
  private async weights(lease: TaskLease): Promise<Verified<Params>> {
    const memo = this.decodedWeights;
    if (memo?.hash === lease.weights.hash) return { value: memo.params, verified: memo.verified };
    const blob = await this.blob(lease.weights.hash, 'weights', this.spareWeights ?? undefined);
    const { params, version } = decodeWeights(blob.value, tensorShapes(lease.config));
    if (version !== lease.weights.version) throw new Error(`weights blob holds version ${version}, the lease says ${lease.weights.version}`);
    const entry = { hash: lease.weights.hash, bytes: blob.value, params, verified: blob.verified };
    this.spareWeights = memo ? new Uint8Array(memo.bytes.buffer) : null;
    this.decodedWeights = entry;
    blob.verified.catch(() => {
      if (this.decodedWeights === entry) this.decodedWeights = null;
    });
    return { value: params, verified: blob.verified };
  }

  /** The bytes of the weights blob with this hash while this worker holds them (until its next weights download; with a training config, the held published weights re-encoded). */
  weightsBlob(hash: string): Uint8Array | undefined {
    return this.decodedWeights?.hash === hash ? this.decodedWeights.bytes : this.holder.blob(hash);
  }

  private async partition(lease: TaskLease): Promise<Verified<Partition>> {
    const hash = lease.partition.hash;
    const hit = this.decodedParts.get(hash);
    if (hit) return hit;
    const blob = await this.blob(hash, 'partition');
    const part = decodePartition(blob.value, `partition ${lease.partition.index}`);
    if (part.lo !== lease.partition.lo || part.hi !== lease.partition.hi) throw new Error(`partition blob holds [${part.lo}, ${part.hi}), the lease says [${lease.partition.lo}, ${lease.partition.hi})`);
    const entry = { value: part, verified: blob.verified };
    this.decodedParts.set(hash, entry);
    blob.verified.catch(() => {
      if (this.decodedParts.get(hash) === entry) this.decodedParts.delete(hash);
    });
    if (this.decodedParts.size > 64) this.decodedParts.delete(this.decodedParts.keys().next().value!);
    return entry;
  }

  /** Returns leases to the coordinator (best effort), so their tasks are re-issued now. */
  private async giveBack(leases: readonly TaskLease[]): Promise<void> {
    if (!this.reg) return;
    for (const l of leases) {
      if (this.returned.has(l.leaseId)) continue;
      this.returned.add(l.leaseId);
      await this.post(PATHS.returnLease(l.leaseId), undefined).catch(() => undefined);
    }
  }

  /**
   * Computes a task (or a bundle: the lease and `more` of the same iteration,
   * summed in this order), then uploads the result. The upload runs in the
   * background while the loop leases and computes the next task (one upload
   * in flight at most), so the coordinator's intake overlaps this worker's
   * compute; with maxTasks set, each upload is awaited.
   */
  private async runTask(lease: TaskLease, more: readonly TaskLease[] = []): Promise<void> {
    const all = [lease, ...more];
    this.current = all;
    for (const l of all) this.emit({ type: 'task', lease: l });
    const t0 = performance.now();
    try {
      for (const m of more) {
        if (m.iteration !== lease.iteration || m.weights.hash !== lease.weights.hash) throw new Error(`lease ${m.leaseId} of a bundle is for other weights than lease ${lease.leaseId}`);
      }
      const training = lease.config.training;
      // with a training config: the published weights, held across versions and moved by deltas (hash-checked before use)
      const w = training ? { value: await this.holder.get(lease.config, tensorShapes(lease.config), lease), verified: Promise.resolve() } : await this.weights(lease);
      const checks = [w.verified];
      let fetchMs = performance.now() - t0;
      const cfg = lease.config;
      const batches: ExampleBatch[] = [];
      let localSum: TaskResult | null = null;
      let localMs = 0;
      for (const l of all) {
        const ta = performance.now();
        const p = await this.partition(l);
        checks.push(p.verified);
        if (training?.mode === 'local-sgd') {
          // H local steps on this partition: computed here, one task after another
          if (!l.local) throw new Error(`lease ${l.leaseId} of a local-SGD job names no round`);
          const tb = performance.now();
          const lr = await computeLocalTask(this.opts.backend, cfg, this.localPlan(cfg, l.local.trainCount), w.value, { round: l.local.round, lo: l.partition.lo, hi: l.partition.hi, weightsVersion: l.weights.version }, (ids) => batchFromPartition(p.value, ids));
          if (lr.count !== l.sample.count) throw new Error(`sampled ${lr.count} examples, the lease says ${l.sample.count}: rng mismatch`);
          const r: TaskResult = { grads: lr.delta, loss: lr.loss, correct: lr.correct, count: lr.count };
          localSum = localSum ? addResults(localSum, r) : r;
          fetchMs += tb - ta;
          localMs += performance.now() - tb;
          continue;
        }
        const ids = sampleRange(cfg.seed, l.iteration, l.partition.lo, l.partition.hi, l.sample.fraction);
        if (ids.length !== l.sample.count) throw new Error(`sampled ${ids.length} examples, the lease says ${l.sample.count}: rng mismatch`);
        batches.push(batchFromPartition(p.value, ids));
        fetchMs += performance.now() - ta;
      }
      // The whole bundle in one call: one submit where the backend batches (webgpu), else one task after another.
      const tb = performance.now();
      const specs = all.map((l) => ({ phase: l.phase, iteration: l.iteration, seed: cfg.seed, weightsVersion: l.weights.version }));
      const sum = localSum ?? (await computeTasks(this.opts.backend, cfg, w.value, specs, batches));
      const computeMs = localMs + performance.now() - tb;
      const t2 = performance.now();
      await Promise.all(checks);
      if (all.some((l) => this.returned.has(l.leaseId))) return; // given back while computing
      const spare = this.uploadBuffers.pop();
      const meta = {
        taskId: lease.taskId,
        leaseId: lease.leaseId,
        weightsVersion: lease.weights.version,
        count: sum!.count,
        loss: sum!.loss,
        correct: sum!.correct,
        ...(more.length ? { bundle: more.map((m) => m.leaseId) } : {}),
      };
      const body = training
        ? encodeTrainingResult(cfg, training, lease.partition.index, { ...meta, weightsHash: lease.weights.hash }, sum!.grads, tensorShapes(cfg))
        : encodeResult(meta, sum!.grads, tensorShapes(cfg), spare);
      const buffer = new Uint8Array(body.buffer);
      const t3 = performance.now();
      if (this.throttle < 1) await sleep((t2 - t0) * (1 / this.throttle - 1), this.stopCtl.signal);
      await this.inflight; // at most one upload in flight, in order
      const upload = this.upload(all, body, sum!.count, t0, { fetch: fetchMs, compute: computeMs, encode: t3 - t2 }).finally(() => {
        if (this.uploadBuffers.length < 2) this.uploadBuffers.push(buffer);
      });
      this.inflight = upload;
      if (this.opts.maxTasks !== undefined || this.opts.beforeUpload) await upload;
    } catch (e) {
      // Nothing of these tasks will be uploaded (a blob failed its hash check,
      // a download or the compute failed): give the leases back, so the tasks
      // are re-issued now rather than at their deadline.
      await this.giveBack(all);
      throw e;
    } finally {
      this.current = [];
    }
  }

  private inflight: Promise<void> = Promise.resolve();
  private readonly returned = new Set<string>();

  /** The published weights of a job with a training config (whole on joining or when too far behind, else by deltas). */
  private readonly holder = new WeightsHolder(async (hash) => {
    const b = await this.blob(hash, 'weights');
    await b.verified; // a delta changes the held weights in place: only a verified blob may
    return b.value;
  });

  /** Whole-weights downloads and deltas applied (tests, benchmarks). */
  get weightStats(): Readonly<WeightsHolder['stats']> {
    return this.holder.stats;
  }

  /** The published weights this worker holds (tests: bit-identical to the coordinator's). */
  heldWeights(): { version: number; hash: string } | null {
    const v = this.holder.version;
    return v === null ? null : { version: v, hash: this.holder.hash! };
  }

  private lsp: { key: string; plan: LocalSgdPlan } | null = null;

  /** A local-SGD job's round plan, rebuilt from the lease (cached per job config and training set size). */
  private localPlan(cfg: JobConfig, trainCount: number): LocalSgdPlan {
    const key = `${JSON.stringify(cfg)}#${trainCount}`;
    if (this.lsp?.key !== key) this.lsp = { key, plan: new LocalSgdPlan(new TrainingPlan(cfg, trainCount), cfg.training!.localSteps) };
    return this.lsp.plan;
  }

  /**
   * Uploads one result (for one lease, or a bundle: the first lease's path,
   * the others named in its metadata); never throws. A refusal that may pass
   * (429, 5xx) or a network error is retried with backoff while the leases
   * are ours, so finished work is not thrown away; after the last try, or on
   * a final refusal (4xx), the result is dropped and the leases go back (or
   * expire) and their tasks are re-issued.
   */
  private async upload(leases: readonly TaskLease[], body: Uint8Array, count: number, t0: number, timing: { fetch: number; compute: number; encode: number }): Promise<void> {
    const lease = leases[0]!;
    const t3 = performance.now();
    await this.opts.beforeUpload?.(lease);
    for (let attempt = 1; ; attempt++) {
      if (leases.some((l) => this.returned.has(l.leaseId))) return;
      try {
        this.s.bytesUp += body.length;
        const res = await this.request(PATHS.result(lease.leaseId), {
          method: 'PUT',
          headers: { ...this.headers(false), 'content-type': SAFETENSORS_TYPE },
          body: body as Uint8Array<ArrayBuffer>,
        });
        const ack = (await res.json()) as ResultAck;
        const t4 = performance.now();
        this.s.tasksDone += leases.length;
        this.s.examplesDone += count;
        this.window.push({ at: Date.now(), examples: count });
        this.emit({ type: 'done', taskId: lease.taskId, tasks: leases.length, examples: count, seconds: (t4 - t0) / 1000, timing: { ...timing, upload: t4 - t3 }, ack, stats: this.stats });
        return;
      } catch (e) {
        const transient = !(e instanceof CoordinatorError) || e.status === 429 || e.status >= 500;
        if (transient && attempt < UPLOAD_TRIES && !this.stopCtl.signal.aborted) {
          await sleep(UPLOAD_RETRY_MS * 2 ** (attempt - 1) * (0.5 + Math.random()), this.stopCtl.signal);
          continue;
        }
        if (e instanceof CoordinatorError) {
          if (e.status === 401) {
            this.reg = null;
            if (e.body.error === 'worker-left') this.leftGrid = true;
          }
          this.emit({ type: 'rejected', taskId: lease.taskId, status: e.status, error: e.body });
          if (leases.length > 1) await this.giveBack(leases); // the bundle's other leases may still be open
        } else {
          this.emit({ type: 'offline', message: `upload of ${lease.taskId} failed: ${(e as Error).message}`, retryInMs: 0 });
        }
        return;
      }
    }
  }
}
