/**
 * Aggregators: one interface (base.ts), two implementations that pass the
 * same contract suite (test/coordinator/aggregate/common.case.ts).
 */
export * from './base.ts';
export { createSummer, jsSummer, SimdSummer, type ReceiveSlot, type Summer, type SummerKind } from './simd.ts';
export { FlatAggregator } from './flat.ts';
export { TreeAggregator } from './tree.ts';

export type AggregatorKind = 'flat' | 'tree';
