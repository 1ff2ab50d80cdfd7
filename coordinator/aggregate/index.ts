/**
 * Aggregators: one interface (base.ts), two implementations that pass the
 * same contract suite (test/coordinator/aggregate/common.case.ts).
 */
import type { Aggregator } from './base.ts';
import { FlatAggregator } from './flat.ts';
import { TreeAggregator } from './tree.ts';
import { createSummer, type SummerKind } from './simd.ts';

export * from './base.ts';
export { createSummer, jsSummer, SimdSummer, type ReceiveSlot, type Summer, type SummerKind } from './simd.ts';
export { FlatAggregator } from './flat.ts';
export { TreeAggregator } from './tree.ts';

export type AggregatorKind = 'flat' | 'tree';

/** summer 'auto': WebAssembly SIMD where the runtime has it, else the plain loop. */
export function createAggregator(kind: AggregatorKind, fanIn = 4, summer: SummerKind = 'auto'): Aggregator {
  const s = createSummer(summer);
  return kind === 'flat' ? new FlatAggregator(s) : new TreeAggregator(fanIn, s);
}
