/**
 * Aggregators: one interface (base.ts); the exact sums (flat, tree) and the
 * robust rules (robust.ts) pass the same contract suite
 * (test/coordinator/aggregate/common.case.ts).
 */
import type { Aggregator } from './base.ts';
import { FlatAggregator } from './flat.ts';
import { RobustAggregator } from './robust.ts';
import { createSummer, type SummerKind } from './simd.ts';
import { TreeAggregator } from './tree.ts';

export * from './base.ts';
export { createSummer, jsSummer, SimdSummer, type ReceiveSlot, type Summer, type SummerKind } from './simd.ts';
export { FlatAggregator } from './flat.ts';
export { TreeAggregator } from './tree.ts';
export { RobustAggregator, ROBUST_RULES, weightedMedian, weightedTrimmedMean, type RobustOptions, type RobustRule } from './robust.ts';
import type { RobustRule } from './robust.ts';

export type AggregatorKind = 'flat' | 'tree';

/** How an iteration's results are combined: the exact sum (the default), or a robust rule. */
export type AggregationRule = 'sum' | RobustRule;

/**
 * An aggregator of the given kind with its own summer (`auto`: WebAssembly
 * SIMD where the runtime has it); with a robust `rule` (a job's
 * `aggregation`), that rule instead of the exact sum.
 */
export function createAggregator(kind: AggregatorKind, opts: { readonly fanIn?: number; readonly summer?: SummerKind; readonly rule?: AggregationRule } = {}): Aggregator {
  if (opts.rule && opts.rule !== 'sum') return new RobustAggregator({ rule: opts.rule });
  const summer = createSummer(opts.summer ?? 'auto');
  return kind === 'flat' ? new FlatAggregator(summer) : new TreeAggregator(opts.fanIn ?? 4, summer);
}
