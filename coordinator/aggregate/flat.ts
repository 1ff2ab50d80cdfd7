/** Flat aggregation: one running sum, results added as they arrive. */
import { BaseAggregator, type PartialAggregate } from './base.ts';
import type { Summer } from './simd.ts';

export class FlatAggregator extends BaseAggregator {
  readonly kind: string;
  private total: PartialAggregate | undefined;

  constructor(summer?: Summer) {
    super(summer);
    this.kind = `flat${this.summer.kind === 'simd' ? ', simd' : ''}`;
  }

  maxTargets(): number {
    return 1;
  }

  protected reset(): void {
    this.total = undefined;
  }

  protected push(p: PartialAggregate): void {
    if (!this.total) this.total = this.summer.target(p);
    else this.merge(this.total, p);
  }

  protected drain(): PartialAggregate {
    return this.total ?? { grads: new Map(), loss: 0, correct: 0, count: 0, covers: new Set() };
  }
}
