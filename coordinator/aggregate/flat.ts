/** Flat aggregation: one running sum, results added as they arrive. */
import { BaseAggregator, mergeInto, type PartialAggregate } from './base.ts';

export class FlatAggregator extends BaseAggregator {
  readonly kind = 'flat';
  private total: PartialAggregate | undefined;

  protected reset(): void {
    this.total = undefined;
  }

  protected push(p: PartialAggregate): void {
    if (!this.total) this.total = p;
    else this.bytesSummed += mergeInto(this.total, p);
  }

  protected drain(): PartialAggregate {
    return this.total ?? { grads: new Map(), loss: 0, correct: 0, count: 0, covers: new Set() };
  }
}
