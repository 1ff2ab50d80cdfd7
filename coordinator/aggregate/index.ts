/**
 * Aggregators: one interface (base.ts); the exact sums (flat, tree) and the
 * robust rules (robust.ts) pass the same contract suite
 * (test/coordinator/aggregate/common.case.ts).
 */
export * from './base.ts';
export { createSummer, jsSummer, SimdSummer, type ReceiveSlot, type Summer, type SummerKind } from './simd.ts';
export { FlatAggregator } from './flat.ts';
export { TreeAggregator } from './tree.ts';
export { RobustAggregator, ROBUST_RULES, weightedMedian, weightedTrimmedMean, type RobustOptions, type RobustRule } from './robust.ts';
import type { RobustRule } from './robust.ts';

export type AggregatorKind = 'flat' | 'tree';

/** How an iteration's results are combined: the exact sum (the default), or a robust rule. */
export type AggregationRule = 'sum' | RobustRule;
