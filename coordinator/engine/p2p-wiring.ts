/**
 * The engine's wiring of peer-to-peer trees (p2p-rounds.ts) to the ledger:
 * a tab's join (with the ICE servers and signalling path), its long-poll for
 * a role, its sketch report (decoded, protocol errors as domain errors); a
 * tree's partial checked against its leaves' reports before it counts; and
 * the tasks of a subtree sent back to the pool when a node is gone or its
 * partial is refused.
 */
import { decodeSketchReport, P2P_PATHS, PEERJS_KEY, ProtocolError, type JoinRequest, type JoinResponse, type RoundResponse } from '../../core/protocol/index.ts';
import { parseSafetensors } from '../../core/safetensors.ts';
import { DomainError } from './errors.ts';
import type { Answered } from './intake.ts';
import type { LeaseBook } from './leasing.ts';
import { checkPartial, claimable, type TreePlan } from './p2p-plan.ts';
import type { P2PRounds } from './p2p-rounds.ts';
import type { Store } from './store.ts';
import type { Worker, WorkerRef, WorkerRegistry } from './workers.ts';

/** What the wiring needs of the engine, passed in explicitly. */
export interface P2PWiringContext {
  readonly rounds: P2PRounds;
  readonly store: Store;
  readonly leases: LeaseBook;
  readonly workers: WorkerRegistry;
  readonly log: (msg: string) => void;
  /** longest long-poll of a role request (the lease book's limit) */
  readonly maxWaitMs: number;
}

/** A valid partial's figures, as intake.ts decoded them. */
export interface PartialSums {
  readonly grads: ReadonlyMap<string, Float32Array>;
  readonly count: number;
  readonly loss: number;
  readonly correct: number;
}

export class P2PWiring {
  constructor(private readonly ctx: P2PWiringContext) {}

  /** A tab takes part in trees (or stops, with webrtc false); answers the ICE servers and the signalling path. */
  join(w: Worker, req: JoinRequest): JoinResponse {
    this.ctx.rounds.join(w, req);
    return { ok: true, iceServers: this.ctx.rounds.opts.iceServers, peerjsPath: P2P_PATHS.peerjs, peerjsKey: PEERJS_KEY };
  }

  /** A role in a tree of the current iteration with the tab's leases, after a long-poll of up to waitMs, or why there is none. */
  round(w: Worker, cached: readonly string[] | undefined, waitMs: number): Promise<RoundResponse> {
    return this.ctx.rounds.round(w, cached, Math.min(Math.max(0, waitMs), this.ctx.maxWaitMs));
  }

  /** A leaf's sketch report (core/protocol/sketch.ts, binary): kept for the check of the partial that covers it. */
  report(w: Worker, body: Uint8Array): void {
    let r;
    try {
      r = decodeSketchReport(body);
    } catch (e) {
      if (e instanceof ProtocolError) throw new DomainError(e.code, e.message);
      throw e;
    }
    this.ctx.rounds.report(w, r);
  }

  /**
   * The tree an upload names (TREE_HEADER), undefined for a direct upload;
   * an unknown tree is refused (`coverage-claim`) and counted as rejected.
   */
  treeOf(treeId: string | undefined, w: Worker, jobId: string): TreePlan | undefined {
    if (treeId === undefined) return undefined;
    const plan = this.ctx.rounds.tree(treeId);
    if (!plan) {
      this.ctx.workers.noteRejected(w);
      this.ctx.store.bumpJob(jobId, 'rejected_results');
      throw new DomainError('coverage-claim', `no tree ${treeId} in the current iteration: upload the result without the tree header`);
    }
    return plan;
  }

  /**
   * Checks a valid partial against its leaves' sketch reports (p2p-plan.ts);
   * a refusal counts against the node that forwarded it, re-issues the
   * tasks it claimed and throws its DomainError.
   */
  checkPartial(plan: TreePlan, w: Worker, jobId: string, answers: readonly Answered[], sums: PartialSums): void {
    const chk = checkPartial({ plan, uploader: w.id, claimed: answers.map((x) => x.lease), reports: this.ctx.rounds.reportsOf(plan.id), grads: sums.grads.values(), count: sums.count, loss: sums.loss, correct: sums.correct });
    if (chk.ok) return;
    this.ctx.workers.noteRejected(w); // the node that forwarded it: its record shows the refusal
    this.ctx.store.bumpJob(jobId, 'rejected_results');
    for (const x of answers) this.ctx.leases.expire(x.lease, 'expired');
    this.ctx.rounds.pump();
    this.ctx.log(`partial of tree ${plan.id} from worker ${w.id} refused (${chk.code}): ${chk.detail}; its ${answers.length} tasks are re-issued`);
    throw new DomainError(chk.code, chk.detail);
  }

  /** A tree node is gone: the tasks of its subtrees, whose sums it may have held, are re-issued (a late direct upload of one is refused as late). */
  expireOrphans(w: Worker): void {
    for (const id of this.ctx.rounds.orphaned(w)) {
      const x = this.ctx.leases.get(id);
      if (x?.state === 'active') this.ctx.leases.expire(x, 'expired');
    }
    this.ctx.rounds.pump();
  }

  /** A refused partial: the leases it names that its subtree still holds go back to the pool now (its leaves' work is lost). */
  reissueClaim(plan: TreePlan, w: WorkerRef, body: Uint8Array): void {
    let ids: string[] = [];
    try {
      const md = parseSafetensors(body, { source: 'result', maxHeaderBytes: 64 * 1024 }).metadata;
      ids = [md.leaseId ?? '', ...(md.bundle ? md.bundle.split(',') : [])];
    } catch {
      return; // malformed: it names nothing
    }
    for (const id of ids.slice(0, 64)) {
      const x = this.ctx.leases.get(id);
      if (x && x.state === 'active' && claimable(plan, w.id, x)) this.ctx.leases.expire(x, 'expired');
    }
    this.ctx.rounds.pump();
  }
}
