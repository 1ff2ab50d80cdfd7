/**
 * The lease book: which worker holds which task of the current iteration
 * until when. Picks a task for a worker (its cached partitions first),
 * issues leases alone or in bundles, parks long-polls and hands them tasks
 * as tasks come free, takes leases back (returned, expired, the worker
 * left or was lost) and sends their tasks back to the pool.
 */
import { randomUUID } from 'node:crypto';
import { PATHS, type LeaseResponse, type TaskLease } from '../../core/protocol/index.ts';
import { DomainError } from './errors.ts';
import type { LeaseInfo } from './intake.ts';
import type { ActiveRun, TaskSlot } from './run.ts';
import type { Store } from './store.ts';
import type { Worker, WorkerRegistry } from './workers.ts';

export type NoLeaseReason = 'no-job' | 'paused' | 'waiting' | 'done';

interface Waiter {
  readonly worker: Worker;
  readonly maxTasks: number;
  readonly resolve: (r: LeaseResponse) => void;
  timer: ReturnType<typeof setTimeout>;
}

export interface LeaseBookOptions {
  /** ms from issue until a lease expires */
  readonly leaseTimeoutMs: number;
  /** longest long-poll of a lease request */
  readonly maxLeaseWaitMs: number;
  /** leases one worker may hold at once */
  readonly maxLeasesPerWorker: number;
  readonly log: (msg: string) => void;
}

/** What the book asks of the engine: the active run and whether it is paused or anything is done. */
export interface LeaseContext {
  readonly run: () => ActiveRun | null;
  /** no task now, why: 'paused' for a paused active run, 'done' / 'no-job' without one */
  readonly idleReason: () => NoLeaseReason | null;
}

export function noLease(reason: NoLeaseReason): LeaseResponse {
  const retryAfterMs = reason === 'waiting' ? 200 : reason === 'done' ? 5_000 : 2_000;
  return { lease: null, reason, retryAfterMs };
}

export class LeaseBook {
  private readonly leases = new Map<string, LeaseInfo>();
  private waiters: Waiter[] = [];

  constructor(
    private readonly store: Store,
    private readonly workers: WorkerRegistry,
    private readonly ctx: LeaseContext,
    private readonly opts: LeaseBookOptions,
  ) {}

  /**
   * A lease now (and up to maxTasks - 1 more of the same iteration), or after
   * a long-poll of up to waitMs, or the reason there is none.
   */
  lease(w: Worker, cached: readonly string[] | undefined, waitMs: number, maxTasks = 1): Promise<LeaseResponse> {
    if (cached) this.workers.setCached(w, cached);
    // One long-poll per worker: a newer request ends the one before it (empty), so a
    // worker's share of an iteration does not grow with the requests it keeps open.
    this.endWaits(w, noLease('waiting'));
    const now = this.tryLease(w, maxTasks);
    const wait = Math.min(Math.max(0, waitMs), this.opts.maxLeaseWaitMs);
    if (now.lease || now.reason === 'done' || wait === 0) return Promise.resolve(now);
    return new Promise((resolve) => {
      const waiter: Waiter = {
        worker: w,
        maxTasks,
        resolve,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter((x) => x !== waiter);
          resolve(this.tryLease(w, maxTasks));
        }, wait),
      };
      this.waiters.push(waiter);
    });
  }

  /**
   * Leases pending tasks to the worker: up to maxTasks, but no more than its
   * share of what is pending among it and the workers waiting for tasks.
   */
  private tryLease(w: Worker, maxTasks = 1): LeaseResponse {
    if (w.row.state === 'left') return noLease('no-job');
    const idle = this.ctx.idleReason();
    if (idle) return noLease(idle);
    const run = this.ctx.run()!;
    const pending = run.slots.filter((s) => s.state === 'pending').length;
    const others = new Set(this.waiters.filter((x) => x.worker !== w).map((x) => x.worker)).size;
    const k = Math.min(maxTasks, Math.ceil(pending / (1 + others)), this.opts.maxLeasesPerWorker - this.heldBy(w));
    const slots: TaskSlot[] = [];
    while (slots.length < k) {
      const slot = this.pick(run, w);
      if (!slot) break;
      slot.state = 'leased'; // taken: the next pick skips it (issue() below records the lease)
      slots.push(slot);
    }
    if (!slots.length) return noLease('waiting');
    // A bundle is computed in one go: each of its leases gets the time of all.
    const timeoutMs = this.opts.leaseTimeoutMs * slots.length;
    const [first, ...more] = slots.map((s) => this.issue(run, s, w, timeoutMs));
    return more.length ? { lease: first!, more } : { lease: first! };
  }

  /**
   * A pending task for the worker: one whose partition it has cached if any;
   * else the one whose partition the fewest other active workers hold,
   * leaving cached partitions to the workers that have them.
   */
  private pick(run: ActiveRun, w: Worker): TaskSlot | null {
    let best: TaskSlot | null = null;
    let bestScore = Infinity;
    for (const s of run.slots) {
      if (s.state !== 'pending') continue;
      const hash = run.partitions[s.partition]!.hash;
      if (w.cached.has(hash)) {
        best = s;
        break;
      }
      const holders = this.workers.holders(hash, w);
      if (holders < bestScore) {
        bestScore = holders;
        best = s;
      }
    }
    return best;
  }

  private issue(run: ActiveRun, slot: TaskSlot, w: Worker, timeoutMs: number): TaskLease {
    const now = Date.now();
    const id = randomUUID();
    const deadline = now + timeoutMs;
    slot.state = 'leased';
    slot.leaseId = id;
    slot.workerId = w.id;
    slot.attempts++;
    w.leased = true;
    const t = run.iteration;
    this.leases.set(id, { id, jobId: run.id, taskId: slot.id, partition: slot.partition, iteration: t, workerId: w.id, deadline, state: 'active' });
    this.store.tx(() => {
      this.store.insertLease({ id, task_id: slot.id, job_id: run.id, iteration: t, worker_id: w.id, issued_at: now, deadline, state: 'active', closed_at: null });
      this.store.updateTask(slot.id, { state: 'leased', lease_id: id, worker_id: w.id, attempts: slot.attempts });
    });
    const p = run.partitions[slot.partition]!;
    const weights = run.weights!;
    return {
      leaseId: id,
      taskId: slot.id,
      jobId: run.id,
      iteration: t,
      phase: run.it!.phase,
      config: run.cfg,
      weights: { hash: weights.hash, bytes: weights.bytes, version: weights.version },
      partition: { hash: p.hash, bytes: p.bytes, index: p.index, lo: p.lo, hi: p.hi },
      sample: { fraction: run.it!.fraction, count: slot.expected },
      timeoutMs,
    };
  }

  /** Hands pending tasks to waiting long-polls: workers with the partition cached first. */
  pump(): void {
    if (!this.waiters.length) return;
    const run = this.ctx.run();
    const pendingHashes = new Set<string>();
    if (run) for (const s of run.slots) if (s.state === 'pending') pendingHashes.add(run.partitions[s.partition]!.hash);
    const ordered = [
      ...this.waiters.filter((x) => [...x.worker.cached].some((h) => pendingHashes.has(h))),
      ...this.waiters.filter((x) => ![...x.worker.cached].some((h) => pendingHashes.has(h))),
    ];
    for (const waiter of ordered) {
      const r = this.tryLease(waiter.worker, waiter.maxTasks);
      if (!r.lease && r.reason === 'waiting') continue;
      if (!r.lease && (r.reason === 'paused' || r.reason === 'no-job')) continue;
      clearTimeout(waiter.timer);
      this.waiters = this.waiters.filter((x) => x !== waiter);
      waiter.resolve(r);
    }
  }

  /** Gives a lease back (the worker is stopping). */
  returnLease(w: Worker, leaseId: string): void {
    const l = this.find(leaseId);
    if (l.workerId !== w.id) throw new DomainError('foreign-lease', `lease ${leaseId} belongs to another worker`);
    if (l.state !== 'active') return;
    this.expire(l, 'returned');
  }

  /** The worker is gone: its leases end, its long-polls end empty (a lease issued to it now would only expire). */
  releaseWorker(w: Worker, how: 'returned' | 'expired'): void {
    for (const l of this.leases.values()) if (l.workerId === w.id && l.state === 'active') this.expire(l, how);
    if (how === 'expired') return;
    this.endWaits(w, noLease('no-job'));
  }

  /** Answers the worker's long-polls with `answer`. */
  private endWaits(w: Worker, answer: LeaseResponse): void {
    for (const x of this.waiters.filter((x) => x.worker === w)) {
      clearTimeout(x.timer);
      x.resolve(answer);
    }
    this.waiters = this.waiters.filter((x) => x.worker !== w);
  }

  /** Leases the worker holds now. */
  private heldBy(w: Worker): number {
    let n = 0;
    for (const l of this.leases.values()) if (l.workerId === w.id && l.state === 'active') n++;
    return n;
  }

  /** Ends a lease unanswered and sends its task back to the pool (if it is still the task's lease). */
  expire(l: LeaseInfo, how: 'returned' | 'expired'): void {
    l.state = how;
    const now = Date.now();
    this.store.closeLease(l.id, how, now);
    const run = this.ctx.run();
    if (run && run.id === l.jobId && run.iteration === l.iteration) {
      const slot = run.slots[l.partition]!;
      if (slot.leaseId === l.id && slot.state === 'leased') {
        slot.state = 'pending';
        slot.leaseId = null;
        slot.workerId = null;
        this.store.updateTask(slot.id, { state: 'pending', lease_id: null, worker_id: null });
        this.opts.log(`lease ${l.id} of task ${l.taskId} ${how}; re-issuing`);
      }
    }
    this.pump();
  }

  /** Expires overdue leases. */
  sweep(now: number): void {
    for (const l of this.leases.values()) if (l.state === 'active' && now > l.deadline) this.expire(l, 'expired');
  }

  /** A lease from memory or the ledger; `unknown-lease` if it was never issued. */
  find(leaseId: string): LeaseInfo {
    const l = this.get(leaseId);
    if (!l) throw new DomainError('unknown-lease', `no lease ${leaseId}: lease a task with POST ${PATHS.lease}`);
    return l;
  }

  /** A lease from memory or the ledger, or undefined. */
  get(leaseId: string): LeaseInfo | undefined {
    const l = this.leases.get(leaseId);
    if (l) return l;
    const row = this.store.lease(leaseId);
    if (!row) return undefined;
    const partition = Number(row.task_id.split(':').pop());
    return { id: row.id, jobId: row.job_id, taskId: row.task_id, partition, iteration: row.iteration, workerId: row.worker_id, deadline: row.deadline, state: row.state };
  }

  /** The job is no longer active: its active leases count as expired. */
  endJob(jobId: string): void {
    for (const l of this.leases.values()) if (l.jobId === jobId && l.state === 'active') l.state = 'expired';
  }

  /** Drops leases of iterations before t - 1, or of other jobs, from memory (the ledger keeps them). */
  forgetBefore(jobId: string, t: number): void {
    for (const [id, l] of this.leases) if (l.iteration < t - 1 || l.jobId !== jobId) this.leases.delete(id);
  }

  /** Answers every long-poll empty. */
  close(): void {
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.resolve(noLease('no-job'));
    }
    this.waiters = [];
  }
}
