/**
 * A result from upload to ledger: the checks an upload's URL and headers
 * allow before its body is read (admit), then the whole result validated
 * (intake.ts), a tree's partial checked against its leaves' reports
 * (p2p-wiring.ts), and the valid result counted or held for a check
 * (checking.ts). A refusal counts against the worker (late or rejected) and
 * throws its DomainError; it changes nothing else but the expiry of
 * overdue leases (and, for a refused partial, the re-issue of its claim).
 */
import type { ResultAck } from '../../core/protocol/index.ts';
import type { ResultChecks } from './checking.ts';
import { DomainError } from './errors.ts';
import { openSlot, validateResult, type LeaseInfo, type Refusal } from './intake.ts';
import type { LeaseBook } from './leasing.ts';
import { claimable } from './p2p-plan.ts';
import type { P2PRounds } from './p2p-rounds.ts';
import type { P2PWiring } from './p2p-wiring.ts';
import type { ActiveRun, Perf } from './run.ts';
import type { Store } from './store.ts';
import type { Worker, WorkerRegistry } from './workers.ts';

/** What the desk needs of the engine, passed in explicitly. */
export interface ResultContext {
  readonly store: Store;
  readonly leases: LeaseBook;
  readonly workers: WorkerRegistry;
  readonly rounds: P2PRounds;
  readonly trees: P2PWiring;
  readonly checks: ResultChecks;
  readonly perf: Perf;
  readonly normBoundPerExample: number;
  /** the active run now */
  readonly run: () => ActiveRun | null;
  /** coverage is complete: apply the update and move on */
  readonly completeIteration: () => void;
}

export class ResultDesk {
  constructor(private readonly ctx: ResultContext) {}

  /**
   * The checks an upload's URL and headers allow, before a byte of its body
   * is read or an intake slot is taken: the lease exists (`unknown-lease`),
   * is this worker's (`foreign-lease`), is not answered (`duplicate-result`)
   * and is open (`lease-expired`). Refusals count as submit's do.
   * submit checks all of it again once the body has arrived.
   */
  admit(w: Worker, leaseId: string, treeId?: string): void {
    const { leases } = this.ctx;
    const l = leases.find(leaseId);
    const overdue: LeaseInfo[] = [];
    // a tree's partial (TREE_HEADER) answers leases of the uploader's subtree; submit refuses an unknown tree
    const plan = treeId === undefined ? undefined : this.ctx.rounds.tree(treeId);
    const v = openSlot(w.id, l, this.ctx.run(), Date.now(), overdue, plan ? (x) => claimable(plan, w.id, x) : undefined);
    for (const x of overdue) leases.expire(x, 'expired');
    if ('ok' in v) this.refuse(w, l, v);
  }

  /** Counts a refused result (late or rejected) and throws its DomainError. */
  private refuse(w: Worker, l: LeaseInfo, v: Refusal): never {
    if (v.late) {
      this.ctx.workers.noteLate(w);
      this.ctx.store.bumpJob(l.jobId, 'late_results');
    } else {
      this.ctx.workers.noteRejected(w);
      this.ctx.store.bumpJob(l.jobId, 'rejected_results');
    }
    throw new DomainError(v.code, v.detail);
  }

  /**
   * Validates a result completely (intake.ts), then (only then) records and
   * aggregates it. A refusal throws DomainError and changes nothing but the
   * rejected / late counters and the expiry of overdue leases.
   */
  submit(w: Worker, leaseId: string, body: Uint8Array, treeId?: string): ResultAck {
    const { leases, trees, perf } = this.ctx;
    const l = leases.find(leaseId);
    const run = this.ctx.run();
    const tStart = performance.now();
    // A tree's partial sum (TREE_HEADER): it may answer leases of the uploader's strict descendants in that tree only.
    const plan = trees.treeOf(treeId, w, l.jobId);
    const v = validateResult({
      ...(plan ? { owns: (x: LeaseInfo) => claimable(plan, w.id, x) } : {}),
      workerId: w.id,
      lease: l,
      lookup: (id) => leases.get(id),
      run,
      body,
      normBoundPerExample: this.ctx.normBoundPerExample,
      now: Date.now(),
    });
    for (const x of v.overdue) leases.expire(x, 'expired');
    if (!v.ok) {
      if (plan) trees.reissueClaim(plan, w, body);
      this.refuse(w, l, v);
    }
    const { meta, grads, answers } = v;
    if (plan) trees.checkPartial(plan, w, l.jobId, answers, { grads, count: meta.count, loss: meta.loss, correct: meta.correct });

    // Valid. Checked (held until the recomputation's verdict), or counted now.
    perf.validateSeconds += (performance.now() - tStart) / 1000;
    perf.results++;
    run!.bytesIn += body.length;
    const sums = { grads, loss: meta.loss, correct: meta.correct, count: meta.count };
    this.ctx.checks.take(run!, w, answers, sums);
    const ack: ResultAck = { accepted: true, taskId: answers[0]!.slot.id, iteration: l.iteration, covered: run!.aggregator.covered, of: run!.aggregator.expected };
    if (run!.aggregator.complete()) this.ctx.completeIteration();
    return ack;
  }
}
