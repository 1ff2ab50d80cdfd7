/**
 * Tree aggregation with fixed fan-in f: the leaves (task results) form
 * groups of f in arrival order; a group's sum is a node of the level above,
 * and so on up. Each level builds one node at a time, adding members as they
 * arrive (the first member becomes the node), so an incoming result is summed
 * at once and never waits, and memory stays one node per level. The sums are
 * the same, bit for bit, as combining each full group at once; each node's
 * work is what a remote aggregator (a peer, later) would do.
 */
import { AggregationError, BaseAggregator, type PartialAggregate } from './base.ts';
import type { Summer } from './simd.ts';

interface Building {
  node: PartialAggregate;
  members: number;
}

export class TreeAggregator extends BaseAggregator {
  readonly kind: string;
  private levels: (Building | null)[] = [];

  constructor(readonly fanIn: number, summer?: Summer) {
    super(summer);
    if (!Number.isInteger(fanIn) || fanIn < 2) throw new AggregationError(`tree fan-in must be an integer >= 2, got ${fanIn}`);
    this.kind = `tree(${fanIn})${this.summer.kind === 'simd' ? ', simd' : ''}`;
  }

  /** One node being built per level, plus one in hand while a full node moves up. */
  maxTargets(n: number): number {
    let levels = 1;
    for (let c = this.fanIn; c < n; c *= this.fanIn) levels++;
    return levels + 2;
  }

  protected reset(): void {
    this.levels = [];
  }

  protected push(p: PartialAggregate): void {
    let level = 0;
    let item = p;
    for (;;) {
      const b = this.levels[level];
      if (!b) {
        this.levels[level] = { node: this.summer.target(item), members: 1 };
        if (this.fanIn > 1) return;
      } else {
        this.merge(b.node, item);
        b.members++;
        if (b.members < this.fanIn) return;
      }
      item = this.levels[level]!.node;
      this.levels[level] = null;
      level++;
    }
  }

  protected drain(): PartialAggregate {
    let carry: PartialAggregate | undefined;
    for (const b of this.levels) {
      if (!b) continue;
      if (carry) this.merge(b.node, carry);
      carry = b.node;
    }
    this.levels = [];
    return carry ?? { grads: new Map(), loss: 0, correct: 0, count: 0, covers: new Set() };
  }
}
