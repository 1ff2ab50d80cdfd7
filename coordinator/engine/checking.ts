/**
 * The engine's side of checking results by recomputation: the glue between
 * the ledger (store.ts, leasing.ts, workers.ts) and coordinator/trust/. A
 * valid result is counted into the aggregation now, or held out of it (its
 * tasks 'checking') while the verifier recomputes its tasks, then counted
 * (agreed) or discarded and its tasks re-issued (failed). Also the trust
 * records as the admin sees them (a worker's view, ban, lift) and a job's
 * verification figures.
 */
import { phaseName } from '../../core/model/plan.ts';
import type { JobConfig } from '../../core/model/config.ts';
import type { JobChecking, WorkerView } from '../../core/protocol/index.ts';
import { sampleRange } from '../../core/rng.ts';
import { batchFromPartition } from '../../core/task.ts';
import type { Sums } from '../aggregate/index.ts';
import type { Verifier } from '../trust/verifier.ts';
import { DomainError } from './errors.ts';
import type { Answered } from './intake.ts';
import type { LeaseBook } from './leasing.ts';
import type { ActiveRun, Perf } from './run.ts';
import type { Store } from './store.ts';
import type { Worker, WorkerRegistry } from './workers.ts';

/** What the checks need of the engine, passed in explicitly. */
export interface CheckContext {
  readonly store: Store;
  readonly leases: LeaseBook;
  readonly workers: WorkerRegistry;
  readonly perf: Perf;
  readonly log: (msg: string) => void;
  /** the active run now: a verdict for a run that has ended or moved on is dropped */
  readonly run: () => ActiveRun | null;
  /** whether the coordinator has closed (a verdict after close is dropped) */
  readonly closed: () => boolean;
  /** coverage is complete: apply the update and move on */
  readonly completeIteration: () => void;
}

export class ResultChecks {
  /** verifier: null without a backend to recompute on (results are then counted unchecked) */
  constructor(private readonly ctx: CheckContext, readonly verifier: Verifier | null) {}

  /** Takes a valid result: held for a check when the job is verified and this one is sampled, else counted now. */
  take(run: ActiveRun, w: Worker, answers: readonly Answered[], sums: Sums): void {
    if (run.cfg.verification === 'verified' && checkable(run.cfg) && this.verifier?.shouldCheck(w.id, run.it!.phase)) this.holdForCheck(run, w, answers, sums);
    else this.countResult(run, w, answers, sums);
  }

  /** Adds a valid result to the aggregation (by its worker, for the robust rules) and records its tasks done. */
  private countResult(run: ActiveRun, w: Worker, answers: readonly Answered[], sums: Sums): void {
    const { store, perf } = this.ctx;
    const tAgg = performance.now();
    const summedBefore = run.aggregator.bytesSummed;
    const taskIds = answers.map((x) => x.slot.id);
    const outcome = run.aggregator.add(taskIds, sums, w.id);
    perf.aggregateSeconds += (performance.now() - tAgg) / 1000;
    perf.aggregateBytes += run.aggregator.bytesSummed - summedBefore;
    if (outcome !== 'added') throw new Error(`aggregator refused tasks ${taskIds.join(', ')} (${outcome}) although the ledger had them open`);
    const now = Date.now();
    for (const x of answers) {
      x.lease.state = 'done';
      x.slot.state = 'done';
    }
    this.verifier?.counted(run.id, sums.count);
    store.tx(() => {
      for (const x of answers) {
        store.closeLease(x.lease.id, 'done', now);
        store.updateTask(x.slot.id, { state: 'done', done_at: now });
      }
      this.ctx.workers.noteDone(w, answers.length, sums.count, now);
    });
  }

  /**
   * Holds a valid result out of the aggregation (its tasks 'checking', its
   * leases answered; its tensors copied out of the receive slot) while the
   * coordinator recomputes its tasks; then counts it (agreed) or discards
   * it and re-issues its tasks to other workers (failed: the worker's
   * record is reset and marked, its source struck, maybe a ban).
   */
  private holdForCheck(run: ActiveRun, w: Worker, answers: readonly Answered[], sums: Sums): void {
    const { store } = this.ctx;
    const held: Sums = { ...sums, grads: new Map([...sums.grads].map(([n, g]) => [n, g.slice()])) };
    const iteration = run.iteration;
    const it = run.it!;
    const now = Date.now();
    for (const x of answers) {
      x.lease.state = 'done';
      x.slot.state = 'checking';
    }
    store.tx(() => {
      for (const x of answers) {
        store.closeLease(x.lease.id, 'done', now);
        store.updateTask(x.slot.id, { state: 'checking' });
      }
    });
    const batches = answers.map((x) => {
      const part = run.data[x.slot.partition]!;
      return batchFromPartition(part, sampleRange(run.cfg.seed, iteration, part.lo, part.hi, it.fraction));
    });
    const verifier = this.verifier!;
    const t0 = performance.now();
    const stillHeld = (): boolean => !this.ctx.closed() && this.ctx.run() === run && run.iteration === iteration && answers.every((x) => x.slot.state === 'checking' && x.slot.leaseId === x.lease.id);
    verifier
      .recompute(run.cfg, run.params, it.phase, iteration, batches)
      .then((recomputed) => {
        if (!stillHeld()) return;
        const verdict = verifier.judge(run.id, w.id, it.phase, held, recomputed, (performance.now() - t0) / 1000, Date.now());
        if (verdict.comparison.agree) {
          this.countResult(run, w, answers, held);
          if (run.aggregator.complete()) this.ctx.completeIteration();
          return;
        }
        this.discardResult(w, answers, verdict.comparison.detail);
        if (verdict.banned) {
          this.ctx.log(`worker ${w.id} banned: ${verdict.record.banReason}`);
          this.ctx.leases.releaseWorker(w, 'returned');
        }
      })
      .catch((e: unknown) => {
        // the check could not run: count nothing unverified; the tasks go to someone else
        this.ctx.log(`check of ${answers.map((x) => x.slot.id).join(', ')} could not run: ${(e as Error).message}; re-issuing`);
        if (stillHeld()) this.discardResult(null, answers, 'the check could not run');
      });
  }

  /** Throws a checked result away: its leases 'discarded' in the ledger, its tasks back to the pool, never again for that worker. */
  private discardResult(w: Worker | null, answers: readonly Answered[], why: string): void {
    const { store } = this.ctx;
    const now = Date.now();
    for (const x of answers) {
      if (w) (x.slot.excluded ??= new Set()).add(w.id);
      x.lease.state = 'discarded';
      x.slot.state = 'pending';
      x.slot.leaseId = null;
      x.slot.workerId = null;
    }
    store.tx(() => {
      for (const x of answers) {
        store.closeLease(x.lease.id, 'discarded', now);
        store.updateTask(x.slot.id, { state: 'pending', lease_id: null, worker_id: null });
      }
    });
    this.ctx.log(`result of ${w ? `worker ${w.id}` : 'a worker'} for ${answers.map((x) => x.slot.id).join(', ')} discarded (${why}); re-issuing`);
    this.ctx.leases.pump();
  }

  /** Why a worker is banned (its token then answers `banned`), or null. */
  banned(workerId: string): string | null {
    const r = this.verifier?.reputation.record(workerId);
    return r?.banned ? (r.banReason ?? 'banned') : null;
  }

  /** A worker's trust record as the admin sees it, with its check probability for the run's current phase. */
  trustOf(workerId: string): WorkerView['trust'] {
    const rec = this.verifier?.reputation.record(workerId);
    if (!rec) return null;
    const { workerId: _id, ...rest } = rec;
    const run = this.ctx.run();
    const kind = run?.it ? phaseName(run.it.phase) : undefined;
    return { ...rest, consecutiveBy: { ...rest.consecutiveBy }, checkProbability: this.verifier!.reputation.checkProbability(workerId, kind) };
  }

  /** The admin bans a worker: its leases go back to the pool. */
  ban(w: Worker, reason: string): void {
    this.requireVerifier().reputation.ban(w.id, Date.now(), reason);
    this.ctx.leases.releaseWorker(w, 'returned');
    this.ctx.log(`worker ${w.id} banned: ${reason}`);
  }

  /** The admin lifts a ban: the worker starts its probation again (checked on every result). */
  lift(w: Worker): void {
    this.requireVerifier().reputation.lift(w.id);
    this.ctx.log(`worker ${w.id}: ban lifted`);
  }

  private requireVerifier(): Verifier {
    if (!this.verifier) throw new DomainError('conflict', 'this coordinator checks no results (no backend to recompute on), so it keeps no trust records');
    return this.verifier;
  }

  /** A job's verification figures for its summary. */
  figures(jobId: string, cfg: JobConfig): JobChecking {
    const f = this.verifier?.figuresOf(jobId) ?? { checks: 0, failures: 0, checkedExamples: 0, acceptedExamples: 0, checkSeconds: 0 };
    const verification = this.verifier && checkable(cfg) ? (cfg.verification ?? 'off') : 'off';
    return { verification, aggregation: cfg.aggregation ?? 'sum', ...f, overhead: f.acceptedExamples ? f.checkedExamples / f.acceptedExamples : 0 };
  }
}

/**
 * Whether the coordinator can check this job's results by recomputation:
 * today only synchronous float32 jobs (no `training` config). A job with a
 * training mode (local SGD, compressed results, delta broadcast) computes on
 * its published weights with its own rounding seeds, which the verifier does
 * not reproduce yet, so its results are counted unchecked (its summary says
 * `verification: 'off'`).
 */
export function checkable(cfg: JobConfig): boolean {
  return cfg.training === undefined;
}
