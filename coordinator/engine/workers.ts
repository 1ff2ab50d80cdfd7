/**
 * The workers: registration, token authentication, heartbeats, leaving,
 * being lost to silence, their counters, and the view the admin API lists.
 * Tokens are kept only as SHA-256 hashes. The records persist in the store;
 * outside the engine a worker is a WorkerRef (its id) and nothing more.
 */
import { randomBytes } from 'node:crypto';
import type { HeartbeatRequest, JobEvent, RegisterRequest, RegisterResponse, WorkerView } from '../../core/protocol/index.ts';
import { sha256Hex } from '../auth.ts';
import { DomainError } from './errors.ts';
import type { Store, WorkerRow } from './store.ts';

/** A worker as the engine hands it out (authenticate) and takes it back. */
export interface WorkerRef {
  readonly id: string;
}

/** The engine's record of a worker. */
export interface Worker extends WorkerRef {
  readonly row: WorkerRow;
  /** hashes of the partition blobs it says it has cached: only those the active job serves, at most MAX_CACHED */
  cached: Set<string>;
  /** it was issued a lease (since this process started, or before: every worker in the store counts) */
  leased: boolean;
}

/** Cached hashes kept per worker: more than any job's partitions (the worker resends its list with every lease request and heartbeat). */
export const MAX_CACHED = 256;

export class WorkerRegistry {
  private readonly byToken = new Map<string, Worker>();
  private readonly byId = new Map<string, Worker>();

  /** `served`: whether a hash is a partition blob of the active job (the only cached hashes leasing looks at) */
  constructor(private readonly store: Store, private readonly emit: (e: JobEvent) => void, private readonly served: (hash: string) => boolean = () => true) {
    for (const row of store.workers()) this.add(row, [], true);
  }

  private add(row: WorkerRow, cached: readonly string[], leased: boolean): Worker {
    const w: Worker = { id: row.id, row, cached: new Set(), leased };
    this.setCached(w, cached);
    this.byToken.set(row.token_hash, w);
    this.byId.set(row.id, w);
    return w;
  }

  /** Records what a worker says it caches, bounded: the active job's partitions among them, at most MAX_CACHED. */
  setCached(w: Worker, cached: readonly string[]): void {
    const keep = new Set<string>();
    for (const h of cached) {
      if (keep.size >= MAX_CACHED) break;
      if (this.served(h)) keep.add(h);
    }
    w.cached = keep;
  }

  /** Deletes a worker from memory and the store: its token is unknown from now on. */
  private forget(w: Worker): void {
    this.byToken.delete(w.row.token_hash);
    this.byId.delete(w.id);
    this.store.deleteWorker(w.id);
  }

  register(req: RegisterRequest, reply: Pick<RegisterResponse, 'heartbeatMs' | 'maxResultBytes'>): RegisterResponse {
    const token = randomBytes(24).toString('base64url');
    const now = Date.now();
    const row: WorkerRow = {
      id: `w-${randomBytes(4).toString('hex')}`,
      token_hash: sha256Hex(token),
      name: req.name,
      runtime: req.runtime,
      backend: req.backend,
      adapter: req.adapter,
      state: 'active',
      joined_at: now,
      last_seen: now,
      tasks_done: 0,
      examples_done: 0,
      examples_per_second: 0,
      bytes_up: 0,
      bytes_down: 0,
      rejected: 0,
      late: 0,
    };
    this.store.insertWorker(row);
    this.add(row, req.cached ?? [], false);
    this.emit({ type: 'worker', workerId: row.id, change: 'joined' });
    return { workerId: row.id, token, ...reply };
  }

  /** The worker a token belongs to; `unauthorized` for none. Marks it seen (and active again if it was lost). */
  authenticate(token: string | undefined): Worker {
    const w = token ? this.byToken.get(sha256Hex(token)) : undefined;
    if (!w) throw new DomainError('unauthorized', 'missing or unknown worker token: register with POST /api/v1/workers');
    // A worker that left (e.g. its tab closed) stays gone: a late request of its own must not bring it back.
    if (w.row.state === 'left') throw new DomainError('worker-left', 'this worker left the grid; register again (POST /api/v1/workers) to rejoin');
    w.row.last_seen = Date.now();
    if (w.row.state === 'lost') {
      w.row.state = 'active';
      this.store.updateWorker(w.id, { state: 'active' });
      this.emit({ type: 'worker', workerId: w.id, change: 'joined' });
    }
    return w;
  }

  /** The record of a reference handed out by authenticate. */
  of(ref: WorkerRef): Worker {
    const w = this.byId.get(ref.id);
    if (!w) throw new DomainError('unauthorized', `unknown worker ${ref.id}: register with POST /api/v1/workers`);
    return w;
  }

  heartbeat(w: Worker, req: HeartbeatRequest): void {
    const s = req.stats;
    if (req.cached) this.setCached(w, req.cached);
    w.row.examples_per_second = s.examplesPerSecond;
    w.row.bytes_up = s.bytesUp;
    w.row.bytes_down = s.bytesDown;
    this.store.updateWorker(w.id, {
      last_seen: w.row.last_seen,
      examples_per_second: s.examplesPerSecond,
      bytes_up: s.bytesUp,
      bytes_down: s.bytesDown,
    });
  }

  /** The worker left; its token stays known, so its late requests get `worker-left` (authenticate). */
  markLeft(w: Worker): void {
    w.row.state = 'left';
    this.store.updateWorker(w.id, { state: 'left', last_seen: Date.now() });
    this.emit({ type: 'worker', workerId: w.id, change: 'left' });
  }

  /**
   * Marks active workers silent for longer than timeoutMs as lost and
   * returns them; a silent worker that never leased anything is forgotten
   * instead (a registration flood leaves no rows), and workers gone (left or
   * lost) for longer than retentionMs are deleted.
   */
  sweepSilent(now: number, timeoutMs: number, retentionMs = Infinity): Worker[] {
    const lost: Worker[] = [];
    for (const w of [...this.byId.values()]) {
      const silent = now - w.row.last_seen;
      if (w.row.state === 'active' && silent > timeoutMs) {
        w.row.state = 'lost';
        lost.push(w);
        if (!w.leased) {
          this.forget(w);
          continue;
        }
        this.store.updateWorker(w.id, { state: 'lost', last_seen: w.row.last_seen });
        this.emit({ type: 'worker', workerId: w.id, change: 'lost' });
      } else if (w.row.state !== 'active' && silent > retentionMs) {
        this.forget(w);
      }
    }
    return lost;
  }

  /** Active workers other than `except` that have the blob cached. */
  holders(hash: string, except: Worker): number {
    let n = 0;
    for (const o of this.byId.values()) if (o !== except && o.row.state === 'active' && o.cached.has(hash)) n++;
    return n;
  }

  activeCount(): number {
    let n = 0;
    for (const w of this.byId.values()) if (w.row.state === 'active') n++;
    return n;
  }

  noteRejected(w: Worker): void {
    w.row.rejected++;
    this.store.updateWorker(w.id, { rejected: w.row.rejected });
  }

  noteLate(w: Worker): void {
    w.row.late++;
    this.store.updateWorker(w.id, { late: w.row.late });
  }

  /** Counts an accepted result (inside the caller's transaction). */
  noteDone(w: Worker, tasks: number, examples: number, now: number): void {
    w.row.tasks_done += tasks;
    w.row.examples_done += examples;
    this.store.updateWorker(w.id, { tasks_done: w.row.tasks_done, examples_done: w.row.examples_done, last_seen: now });
  }

  views(): WorkerView[] {
    return [...this.byId.values()].map(({ row: r }) => ({
      id: r.id,
      name: r.name,
      runtime: r.runtime,
      backend: r.backend,
      adapter: r.adapter,
      state: r.state,
      tasksDone: r.tasks_done,
      examplesDone: r.examples_done,
      examplesPerSecond: r.examples_per_second,
      bytesUp: r.bytes_up,
      bytesDown: r.bytes_down,
      rejected: r.rejected,
      late: r.late,
      joinedAt: r.joined_at,
      lastSeen: r.last_seen,
    }));
  }
}
