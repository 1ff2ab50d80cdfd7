/**
 * A tab's loop in peer-to-peer rounds, runtime-neutral: register, join,
 * long-poll for a role (core/protocol/p2p.ts's TreeRole) with its leases,
 * compute them (summed, like a bundle), then by role:
 *
 * - a leaf reports the sketches of its result to the coordinator directly
 *   (sketch.ts), then hands the result to its parent; if the parent is
 *   unreachable or answers `late` it uploads the result itself;
 * - a node with children uploads its own result directly, collects its
 *   children's partials for collectMs at most, adds them and hands the sum
 *   (covering their leases, never its own) to its parent, or uploads it with
 *   TREE_HEADER when it is the root or its parent fails it.
 *
 * The data channels are a PeerTransport: WebRTC through PeerJS in the
 * browser (client/web/p2p.ts), memory in tests. The coordinator's exact
 * coverage decides: a result that arrives twice counts once.
 */
import type { ComputeBackend } from '../../core/backend.ts';
import { phaseTensors, tensorShapes } from '../../core/model/params.ts';
import {
  blobHash,
  decodeResult,
  decodeWeights,
  encodeResult,
  encodeSketchReport,
  P2P_PATHS,
  PATHS,
  SAFETENSORS_TYPE,
  sketchTensors,
  TREE_HEADER,
  WORKER_HEADER,
  type ApiError,
  type RegisterResponse,
  type RoundResponse,
  type TaskLease,
  type TreeRole,
} from '../../core/protocol/index.ts';
import { decodePartition } from '../../core/protocol/partition.ts';
import { sampleRange } from '../../core/rng.ts';
import { addResults, batchFromPartition, computeTask, type TaskResult } from '../../core/task.ts';
import { coordinatorError, CoordinatorError, sleep } from './net.ts';
import type { FetchLike } from './options.ts';

/** What a child's partial got from its parent. */
export type Delivery = 'ack' | 'late' | 'failed';

/** Data channels between tabs, by peer id (the worker id). */
export interface PeerTransport {
  /** Sends a partial result body (null: the subtree has nothing) to `peer`; resolves with its answer, 'failed' after timeoutMs or on a broken channel. */
  send(peer: string, treeId: string, body: Uint8Array | null, timeoutMs: number): Promise<Delivery>;
  /** Partials from children: the handler answers 'ack' (taken into the sum) or 'late'. */
  onPartial(handler: (from: string, treeId: string, body: Uint8Array | null) => 'ack' | 'late'): void;
  /** Connects this tab as `peerId` with the worker's token (signalling), once registered. */
  open(peerId: string, token: string): Promise<void>;
  close(): void;
}

export interface TreeWorkerOptions {
  readonly coordinator: string;
  readonly backend: ComputeBackend;
  readonly name: string;
  readonly runtime: 'browser' | 'node' | 'deno';
  readonly transport: PeerTransport;
  readonly fetch?: FetchLike;
  readonly bandwidthMbps?: number;
  /** long-poll of role requests (default 20 000 ms) */
  readonly roundWaitMs?: number;
  /** a leaf waits this long for its parent's answer (default 10 000 ms) */
  readonly ackMs?: number;
  readonly exitWhenDone?: boolean;
  /** test hook: changes the partial a node forwards (a tampering tab) */
  readonly tamper?: (sum: TaskResult) => void;
  readonly onEvent?: (e: TreeWorkerEvent) => void;
}

export type TreeWorkerEvent =
  | { readonly type: 'role'; readonly role: TreeRole }
  | { readonly type: 'delivered'; readonly treeId: string; readonly to: string | 'coordinator'; readonly how: Delivery | 'uploaded'; readonly tasks: number }
  | { readonly type: 'refused'; readonly treeId: string; readonly error: ApiError }
  | { readonly type: 'idle'; readonly reason: string };

interface Inbox {
  readonly partials: { readonly from: string; readonly body: Uint8Array | null }[];
  closed: boolean;
  wake: (() => void) | null;
}

export class TreeWorker {
  private readonly fetchFn: FetchLike;
  private readonly base: string;
  private reg: RegisterResponse | null = null;
  private stopping = false;
  private readonly stopCtl = new AbortController();
  private readonly inboxes = new Map<string, Inbox>();
  private weightsMemo: { hash: string; params: Map<string, Float32Array> } | null = null;
  private readonly parts = new Map<string, ReturnType<typeof decodePartition>>();
  /** uploads made to the coordinator (results and partials) */
  uploads = 0;

  constructor(private readonly opts: TreeWorkerOptions) {
    this.fetchFn = opts.fetch ?? ((input, init) => fetch(input, init));
    this.base = opts.coordinator.replace(/\/+$/, '');
    opts.transport.onPartial((from, treeId, body) => {
      const box = this.inbox(treeId);
      if (box.closed) return 'late';
      box.partials.push({ from, body });
      box.wake?.();
      return 'ack';
    });
  }

  get workerId(): string | null {
    return this.reg?.workerId ?? null;
  }

  private inbox(treeId: string): Inbox {
    let box = this.inboxes.get(treeId);
    if (!box) {
      box = { partials: [], closed: false, wake: null };
      this.inboxes.set(treeId, box);
      if (this.inboxes.size > 64) this.inboxes.delete(this.inboxes.keys().next().value!);
    }
    return box;
  }

  private async request(path: string, init: RequestInit): Promise<Response> {
    const headers: Record<string, string> = { ...(init.headers as Record<string, string>) };
    if (this.reg) headers[WORKER_HEADER] = this.reg.token;
    const res = await this.fetchFn(this.base + path, { ...init, headers });
    if (!res.ok) {
      throw await coordinatorError(res);
    }
    return res;
  }

  private async post<T>(path: string, body: unknown): Promise<T> {
    const res = await this.request(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body ?? {}), signal: this.stopCtl.signal });
    return (await res.json()) as T;
  }

  /** Runs until stop() or (exitWhenDone) the job's end. */
  async start(): Promise<void> {
    const b = this.opts.backend;
    this.reg = await this.post<RegisterResponse>(PATHS.register, { name: this.opts.name, runtime: this.opts.runtime, backend: b.kind, adapter: b.adapter });
    await this.post(P2P_PATHS.join, { webrtc: true, ...(this.opts.bandwidthMbps !== undefined ? { bandwidthMbps: this.opts.bandwidthMbps } : {}) });
    await this.opts.transport.open(this.reg.workerId, this.reg.token);
    const beat = setInterval(() => void this.post(PATHS.heartbeat, { stats: { tasksDone: 0, examplesDone: 0, examplesPerSecond: 0, bytesUp: 0, bytesDown: 0 } }).catch(() => undefined), this.reg.heartbeatMs);
    try {
      while (!this.stopping) {
        let r: RoundResponse;
        try {
          r = await this.post<RoundResponse>(P2P_PATHS.round, { waitMs: this.opts.roundWaitMs ?? 20_000 });
        } catch (e) {
          if (this.stopping) break;
          await sleep(200, this.stopCtl.signal);
          continue;
        }
        if (!r.role) {
          this.opts.onEvent?.({ type: 'idle', reason: r.reason });
          if (r.reason === 'done' && this.opts.exitWhenDone) break;
          await sleep(r.retryAfterMs, this.stopCtl.signal);
          continue;
        }
        this.opts.onEvent?.({ type: 'role', role: r.role });
        await this.play(r.role).catch((e: unknown) => {
          if (!this.stopping) this.opts.onEvent?.({ type: 'refused', treeId: r.role!.treeId, error: { error: 'internal', detail: (e as Error).message } });
        });
      }
    } finally {
      clearInterval(beat);
      if (!this.stopping) await this.post(PATHS.leave, {}).catch(() => undefined);
    }
  }

  /** Stops at once, as a closed tab would: nothing more is sent, the coordinator is told this worker left. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.stopCtl.abort();
    this.opts.transport.close();
    await this.post(PATHS.leave, {}).catch(() => undefined);
  }

  private async play(role: TreeRole): Promise<void> {
    const t0 = Date.now();
    const own = await this.compute(role.leases);
    const leaf = role.parent !== null && role.children.length === 0;
    if (leaf) {
      const body = this.encode(role.leases, own);
      const names = phaseTensors(role.leases[0]!.config, role.leases[0]!.phase);
      const grads = names.map((n) => own.grads.get(n)!);
      const seeds = role.seeds!;
      const report = encodeSketchReport({
        treeId: role.treeId,
        leaseIds: role.leases.map((l) => l.leaseId),
        count: own.count,
        loss: own.loss,
        correct: own.correct,
        tree: sketchTensors(grads, seeds.check, role.buckets),
        own: sketchTensors(grads, seeds.own, role.buckets),
      });
      await this.request(P2P_PATHS.sketch, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: report as Uint8Array<ArrayBuffer> });
      await this.handUp(role, body, role.leases.length);
      return;
    }
    // A node with children (or a tree of one): its own result goes straight to the coordinator.
    await this.upload(role.leases[0]!.leaseId, this.encode(role.leases, own), undefined, role.treeId, role.leases.length);
    if (!role.children.length) return;
    const box = this.inbox(role.treeId);
    const deadline = t0 + role.collectMs;
    while (!this.stopping && box.partials.length < role.children.length && Date.now() < deadline) {
      await new Promise<void>((r) => {
        box.wake = r;
        setTimeout(r, Math.max(0, deadline - Date.now()));
      });
      box.wake = null;
    }
    box.closed = true;
    if (this.stopping) return;
    const shapes = new Map(phaseTensors(role.leases[0]!.config, role.leases[0]!.phase).map((n) => [n, tensorShapes(role.leases[0]!.config).get(n)!]));
    let sum: TaskResult | null = null;
    const covers: string[] = [];
    let firstTask = '';
    for (const p of box.partials) {
      if (!p.body) continue;
      const d = decodeResult(p.body, shapes);
      if (!covers.length) firstTask = d.meta.taskId; // the upload's path names the first covered lease: its task too
      covers.push(d.meta.leaseId, ...(d.meta.bundle ?? []));
      const part: TaskResult = { grads: new Map([...d.grads].map(([k, g]) => [k, g.slice()])), loss: d.meta.loss, correct: d.meta.correct, count: d.meta.count };
      sum = sum ? addResults(sum, part) : part;
    }
    if (!sum) {
      if (role.parent) await this.opts.transport.send(role.parent, role.treeId, null, this.opts.ackMs ?? 10_000);
      return;
    }
    this.opts.tamper?.(sum);
    const first = role.leases[0]!;
    const body = encodeResult(
      { taskId: firstTask, leaseId: covers[0]!, weightsVersion: first.weights.version, count: sum.count, loss: sum.loss, correct: sum.correct, ...(covers.length > 1 ? { bundle: covers.slice(1) } : {}) },
      sum.grads,
      shapes,
    );
    if (role.parent) await this.handUp(role, body, covers.length);
    else await this.upload(covers[0]!, body, role.treeId, role.treeId, covers.length);
  }

  /** A leaf's result or a node's partial to the parent; on 'late' or 'failed', to the coordinator. */
  private async handUp(role: TreeRole, body: Uint8Array, tasks: number): Promise<void> {
    const how = await this.opts.transport.send(role.parent!, role.treeId, body, this.opts.ackMs ?? 10_000);
    if (how === 'ack') {
      this.opts.onEvent?.({ type: 'delivered', treeId: role.treeId, to: role.parent!, how, tasks });
      return;
    }
    const meta = decodeResult(body, new Map(phaseTensors(role.leases[0]!.config, role.leases[0]!.phase).map((n) => [n, tensorShapes(role.leases[0]!.config).get(n)!]))).meta;
    const partial = role.children.length > 0;
    await this.upload(meta.leaseId, body, partial ? role.treeId : undefined, role.treeId, tasks);
  }

  private async upload(leaseId: string, body: Uint8Array, tree: string | undefined, treeId: string, tasks: number): Promise<void> {
    try {
      await this.request(PATHS.result(leaseId), {
        method: 'PUT',
        headers: { 'content-type': SAFETENSORS_TYPE, 'content-length': String(body.length), ...(tree ? { [TREE_HEADER]: tree } : {}) },
        body: body as Uint8Array<ArrayBuffer>,
      });
      this.uploads++;
      this.opts.onEvent?.({ type: 'delivered', treeId, to: 'coordinator', how: 'uploaded', tasks });
    } catch (e) {
      if (e instanceof CoordinatorError) this.opts.onEvent?.({ type: 'refused', treeId, error: e.body });
      else throw e;
    }
  }

  private encode(leases: readonly TaskLease[], r: TaskResult): Uint8Array {
    const first = leases[0]!;
    const shapes = tensorShapes(first.config);
    const ordered = new Map(phaseTensors(first.config, first.phase).map((n) => [n, r.grads.get(n)!]));
    return encodeResult(
      { taskId: first.taskId, leaseId: first.leaseId, weightsVersion: first.weights.version, count: r.count, loss: r.loss, correct: r.correct, ...(leases.length > 1 ? { bundle: leases.slice(1).map((l) => l.leaseId) } : {}) },
      ordered,
      shapes,
    );
  }

  private async blob(hash: string): Promise<Uint8Array> {
    const res = await this.request(PATHS.blob(hash), { method: 'GET', signal: this.stopCtl.signal });
    const bytes = new Uint8Array(await res.arrayBuffer());
    const got = await blobHash(bytes);
    if (got !== hash) throw new Error(`blob ${hash} arrived with SHA-256 ${got}`);
    return bytes;
  }

  /** The leases' results, summed in the order given. */
  private async compute(leases: readonly TaskLease[]): Promise<TaskResult> {
    const first = leases[0]!;
    if (this.weightsMemo?.hash !== first.weights.hash) {
      const { params } = decodeWeights(await this.blob(first.weights.hash), tensorShapes(first.config));
      this.weightsMemo = { hash: first.weights.hash, params };
    }
    let sum: TaskResult | null = null;
    for (const l of leases) {
      let part = this.parts.get(l.partition.hash);
      if (!part) {
        part = decodePartition(await this.blob(l.partition.hash), `partition ${l.partition.index}`);
        this.parts.set(l.partition.hash, part);
      }
      const ids = sampleRange(l.config.seed, l.iteration, l.partition.lo, l.partition.hi, l.sample.fraction);
      const r = await computeTask(this.opts.backend, l.config, this.weightsMemo.params, { phase: l.phase, iteration: l.iteration, seed: l.config.seed, weightsVersion: l.weights.version }, batchFromPartition(part, ids));
      sum = sum ? addResults(sum, r) : r;
    }
    return sum!;
  }
}
