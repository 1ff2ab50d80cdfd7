/**
 * Peer-to-peer rounds: which tabs take part (join), their long-polls for a
 * role (round), the trees planned for the current iteration (p2p-plan.ts)
 * with the leases each node got, and the leaves' sketch reports. Tabs wait
 * together for a moment (gatherMs) once tasks are pending, then the tabs
 * waiting get their shares of the pending tasks through the lease book
 * (like a bundle) and their roles in one tree; a tab that comes later gets
 * a tree of its own (it uploads directly). Deno workers lease as before:
 * the coordinator is their interior node.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { IceServer, JoinRequest, LeaseResponse, RoundResponse, TaskLease, TreeRole } from '../../core/protocol/index.ts';
import { SKETCH_BUCKETS, type SketchReport } from '../../core/protocol/sketch.ts';
import { DomainError } from './errors.ts';
import { noLease, type NoLeaseReason } from './leasing.ts';
import { descendants, planTree, type TreePlan } from './p2p-plan.ts';
import type { ActiveRun } from './run.ts';
import type { Worker } from './workers.ts';

export interface P2POptions {
  /** children per node (default 2) */
  readonly fanIn: number;
  /** ms tabs wait together before a tree is planned (default 100) */
  readonly gatherMs: number;
  /** ms a node with children waits for them (default: half the lease timeout) */
  readonly collectMs: number;
  readonly buckets: number;
  readonly iceServers: readonly IceServer[];
}

export interface P2PContext {
  readonly run: () => ActiveRun | null;
  readonly idleReason: () => NoLeaseReason | null;
  /** leases now (no wait), up to maxTasks (the lease book's share rule applies) */
  readonly lease: (w: Worker, cached: readonly string[] | undefined, maxTasks: number) => Promise<LeaseResponse>;
}

interface Waiter {
  readonly worker: Worker;
  readonly cached: readonly string[] | undefined;
  readonly resolve: (r: RoundResponse) => void;
  readonly timer: ReturnType<typeof setTimeout>;
}

/** No role now, why (the lease book's reasons and retry delays). */
function noRole(reason: NoLeaseReason): RoundResponse {
  const r = noLease(reason);
  return { role: null, reason, retryAfterMs: r.lease ? 0 : r.retryAfterMs };
}

const seed = (): string => randomBytes(16).toString('hex');

export class P2PRounds {
  private readonly members = new Map<string, { readonly bandwidthMbps: number }>();
  private waiters: Waiter[] = [];
  private readonly trees = new Map<string, TreePlan>();
  private readonly reports = new Map<string, Map<string, SketchReport>>();
  /** leaf's own seed by lease id (for recomputation checks: recompute, sketch with it, compare with the report's `own`) */
  private readonly ownSeeds = new Map<string, { readonly treeId: string; readonly seed: string }>();
  private gather: ReturnType<typeof setTimeout> | null = null;
  private planning = false;

  constructor(private readonly ctx: P2PContext, readonly opts: P2POptions) {}

  join(w: Worker, req: JoinRequest): void {
    if (!req.webrtc) {
      this.members.delete(w.id);
      return;
    }
    this.members.set(w.id, { bandwidthMbps: req.bandwidthMbps ?? 0 });
  }

  isMember(w: Worker): boolean {
    return this.members.has(w.id);
  }

  /** A role now or after a long-poll of up to waitMs, or why there is none. */
  round(w: Worker, cached: readonly string[] | undefined, waitMs: number): Promise<RoundResponse> {
    if (!this.members.has(w.id)) throw new DomainError('conflict', `worker ${w.id} has not joined peer-to-peer rounds: POST /api/v1/p2p/join with {webrtc: true} first`);
    const idle = this.ctx.idleReason();
    if (idle && idle !== 'paused') return Promise.resolve(noRole(idle));
    this.waiters = this.waiters.filter((x) => {
      if (x.worker !== w) return true;
      clearTimeout(x.timer);
      x.resolve(noRole('waiting')); // a newer poll of the same tab replaces it
      return false;
    });
    return new Promise((resolve) => {
      const waiter: Waiter = {
        worker: w,
        cached,
        resolve,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter((x) => x !== waiter);
          resolve(noRole(this.ctx.idleReason() ?? 'waiting'));
        }, Math.max(0, waitMs)),
      };
      this.waiters.push(waiter);
      this.pump();
    });
  }

  /** Plans a tree over the waiting tabs gatherMs after tasks and tabs are both there. */
  pump(): void {
    if (this.planning || !this.waiters.length) return;
    const run = this.ctx.run();
    if (!run || this.ctx.idleReason() || !run.slots.some((s) => s.state === 'pending')) return;
    // every member waiting: plan now; else give the others gatherMs to come
    const all = [...this.members.keys()].every((id) => this.waiters.some((x) => x.worker.id === id));
    if (this.gather && !all) return;
    if (this.gather) clearTimeout(this.gather);
    this.gather = setTimeout(() => {
      this.gather = null;
      void this.plan();
    }, all ? 0 : this.opts.gatherMs);
  }

  private async plan(): Promise<void> {
    const run = this.ctx.run();
    if (!run || this.ctx.idleReason()) return;
    this.planning = true;
    try {
      const tabs = [...this.waiters].sort((a, b) => this.bandwidth(b.worker) - this.bandwidth(a.worker));
      const got: { waiter: Waiter; leases: TaskLease[] }[] = [];
      for (let i = 0; i < tabs.length; i++) {
        const pending = run.slots.filter((s) => s.state === 'pending').length;
        if (!pending) break;
        const r = await this.ctx.lease(tabs[i]!.worker, tabs[i]!.cached, Math.ceil(pending / (tabs.length - i)));
        if (r.lease) got.push({ waiter: tabs[i]!, leases: [r.lease, ...(r.more ?? [])] });
      }
      if (!got.length) return;
      const nodes = planTree(got.map((g) => g.waiter.worker.id), this.opts.fanIn);
      const plan: TreePlan = {
        id: `t-${randomUUID()}`,
        jobId: run.id,
        iteration: run.iteration,
        nodes,
        checkSeed: seed(),
        buckets: this.opts.buckets,
        leases: new Map(got.map((g) => [g.waiter.worker.id, g.leases.map((l) => l.leaseId)])),
      };
      this.trees.set(plan.id, plan);
      this.reports.set(plan.id, new Map());
      for (const [i, g] of got.entries()) {
        const n = nodes[i]!;
        const leaf = n.parent !== null && n.children.length === 0;
        const own = leaf ? seed() : null;
        if (own) for (const l of g.leases) this.ownSeeds.set(l.leaseId, { treeId: plan.id, seed: own });
        const role: TreeRole = {
          treeId: plan.id,
          iteration: run.iteration,
          parent: n.parent === null ? null : nodes[n.parent]!.peer,
          children: n.children.map((c) => nodes[c]!.peer),
          leases: g.leases,
          seeds: own ? { check: plan.checkSeed, own } : null,
          buckets: plan.buckets,
          collectMs: this.opts.collectMs,
        };
        clearTimeout(g.waiter.timer);
        this.waiters = this.waiters.filter((x) => x !== g.waiter);
        g.waiter.resolve({ role });
      }
    } finally {
      this.planning = false;
    }
    this.pump();
  }

  private bandwidth(w: Worker): number {
    return this.members.get(w.id)?.bandwidthMbps ?? 0;
  }

  tree(id: string): TreePlan | undefined {
    return this.trees.get(id);
  }

  reportsOf(treeId: string): ReadonlyMap<string, SketchReport> {
    return this.reports.get(treeId) ?? new Map();
  }

  /** A leaf's sketch report: only for leases issued to it as a leaf of that tree, once. */
  report(w: Worker, r: SketchReport): void {
    const plan = this.trees.get(r.treeId);
    if (!plan) throw new DomainError('not-found', `no tree ${r.treeId} in the current iteration: the report came too late or names a tree never planned`);
    const node = plan.nodes.find((n) => n.peer === w.id);
    if (!node || node.parent === null || node.children.length) throw new DomainError('coverage-claim', `worker ${w.id} is not a leaf of tree ${r.treeId}: only leaves report sketches`);
    const mine = plan.leases.get(w.id) ?? [];
    const foreign = r.leaseIds.find((id) => !mine.includes(id));
    if (foreign) throw new DomainError('coverage-claim', `lease ${foreign} was not issued to worker ${w.id} in tree ${r.treeId}`);
    if (r.tree.values.length !== plan.buckets) throw new DomainError('bad-request', `the tree's sketches have ${plan.buckets} buckets, the report ${r.tree.values.length}`);
    const book = this.reports.get(r.treeId)!;
    if (r.leaseIds.some((id) => book.has(id))) throw new DomainError('duplicate-result', `a sketch of lease ${r.leaseIds.find((id) => book.has(id))} was already reported`);
    for (const id of r.leaseIds) book.set(id, r);
  }

  /** The own seed handed with a lease (the trust work's recomputation check), if it was a leaf's. */
  ownSeed(leaseId: string): string | undefined {
    return this.ownSeeds.get(leaseId)?.seed;
  }

  /** A new iteration: trees and reports of earlier ones go. */
  forgetBefore(jobId: string, iteration: number): void {
    for (const [id, t] of this.trees) {
      if (t.jobId === jobId && t.iteration >= iteration) continue;
      this.trees.delete(id);
      this.reports.delete(id);
    }
    for (const [l, x] of this.ownSeeds) if (!this.trees.has(x.treeId)) this.ownSeeds.delete(l);
    this.pump();
  }

  /**
   * Leases of the subtrees below a node of `w` (it left or was lost): sums
   * it took from its children die with it, so those tasks go back now.
   */
  orphaned(w: Worker): string[] {
    const out: string[] = [];
    for (const t of this.trees.values()) {
      const at = t.nodes.findIndex((n) => n.peer === w.id);
      if (at < 0 || !t.nodes[at]!.children.length) continue;
      for (const d of descendants(t.nodes, at)) out.push(...(t.leases.get(d) ?? []));
    }
    return out;
  }

  leave(w: Worker): void {
    this.members.delete(w.id);
    for (const x of this.waiters.filter((x) => x.worker === w)) {
      clearTimeout(x.timer);
      x.resolve(noRole('no-job'));
    }
    this.waiters = this.waiters.filter((x) => x.worker !== w);
  }

  close(): void {
    if (this.gather) clearTimeout(this.gather);
    for (const x of this.waiters) {
      clearTimeout(x.timer);
      x.resolve(noRole('no-job'));
    }
    this.waiters = [];
  }
}

export const P2P_DEFAULTS = { fanIn: 2, gatherMs: 100, buckets: SKETCH_BUCKETS, iceServers: [] as readonly IceServer[] };
