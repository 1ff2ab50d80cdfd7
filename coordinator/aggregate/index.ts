/**
 * Aggregators: one interface (base.ts), two implementations that pass the
 * same contract suite (test/coordinator/aggregate/common.case.ts).
 */
import type { Aggregator } from './base.ts';
import { FlatAggregator } from './flat.ts';
import { TreeAggregator } from './tree.ts';

export * from './base.ts';
export { FlatAggregator } from './flat.ts';
export { TreeAggregator } from './tree.ts';

export type AggregatorKind = 'flat' | 'tree';

export function createAggregator(kind: AggregatorKind, fanIn = 4): Aggregator {
  return kind === 'flat' ? new FlatAggregator() : new TreeAggregator(fanIn);
}
