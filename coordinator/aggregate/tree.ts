/**
 * Tree aggregation with fixed fan-in f: leaves (task results) collect at
 * level 0; whenever a level holds f partials they combine into one partial
 * at the level above. At most f - 1 partials wait per level, so memory stays
 * O(f log_f n) tensors, and each node's combine is the work a remote
 * aggregator (a peer, later) would do.
 */
import { AggregationError, BaseAggregator, type PartialAggregate } from './base.ts';
import type { Summer } from './simd.ts';

export class TreeAggregator extends BaseAggregator {
  readonly kind: string;
  private levels: PartialAggregate[][] = [];

  constructor(readonly fanIn: number, summer?: Summer) {
    super(summer);
    if (!Number.isInteger(fanIn) || fanIn < 2) throw new AggregationError(`tree fan-in must be an integer >= 2, got ${fanIn}`);
    this.kind = `tree(${fanIn})${this.summer.kind === 'simd' ? ', simd' : ''}`;
  }

  /** Up to f - 1 waiting nodes on each level above the leaves, the node being built, and the drain's carry. */
  protected maxTargets(n: number): number {
    let levels = 1;
    for (let c = this.fanIn; c < n; c *= this.fanIn) levels++;
    return (this.fanIn - 1) * levels + 2;
  }

  protected reset(): void {
    this.levels = [];
  }

  private combine(group: PartialAggregate[]): PartialAggregate {
    const node = this.summer.target(group[0]!);
    for (let i = 1; i < group.length; i++) this.merge(node, group[i]!);
    return node;
  }

  protected push(p: PartialAggregate): void {
    let level = 0;
    let node = p;
    for (;;) {
      const row = (this.levels[level] ??= []);
      row.push(node);
      if (row.length < this.fanIn) return;
      node = this.combine(row.splice(0, row.length));
      level++;
    }
  }

  protected drain(): PartialAggregate {
    let carry: PartialAggregate | undefined;
    for (const row of this.levels) {
      const group = carry ? [...row, carry] : row;
      if (group.length) carry = this.combine(group);
    }
    this.levels = [];
    return carry ?? { grads: new Map(), loss: 0, correct: 0, count: 0, covers: new Set() };
  }
}
