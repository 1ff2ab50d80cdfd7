/**
 * Aggregators: one interface (base.ts), two implementations that pass the
 * same contract suite (test/coordinator/aggregate/common.case.ts).
 */
import type { Aggregator } from './base.ts';
import { FlatAggregator } from './flat.ts';
import { createSummer, type SummerKind } from './simd.ts';
import { TreeAggregator } from './tree.ts';

export * from './base.ts';
export { createSummer, jsSummer, SimdSummer, type ReceiveSlot, type Summer, type SummerKind } from './simd.ts';
export { FlatAggregator } from './flat.ts';
export { TreeAggregator } from './tree.ts';

export type AggregatorKind = 'flat' | 'tree';

/** An aggregator of the given kind with its own summer (`auto`: WebAssembly SIMD where the runtime has it). */
export function createAggregator(kind: AggregatorKind, opts: { readonly fanIn?: number; readonly summer?: SummerKind } = {}): Aggregator {
  const summer = createSummer(opts.summer ?? 'auto');
  return kind === 'flat' ? new FlatAggregator(summer) : new TreeAggregator(opts.fanIn ?? 4, summer);
}
