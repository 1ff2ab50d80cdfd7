/**
 * Partitions: a Dataset cut into P contiguous ranges of examples (the ranges
 * of partitionRange, shared with the training plan). Each is shipped to
 * workers as one blob in the format of core/protocol/partition.ts.
 */
import { partitionRange } from '../core/model/plan.ts';
import { checkDataset, type Dataset } from '../core/dataset.ts';
import type { Partition } from '../core/protocol/partition.ts';

/** Partition p of `parts` (memory shared with ds). */
export function cutPartition(ds: Dataset, parts: number, p: number): Partition {
  if (!Number.isSafeInteger(parts) || parts < 1) throw new RangeError(`partition count must be a positive integer, got ${parts}`);
  if (!Number.isSafeInteger(p) || p < 0 || p >= parts) throw new RangeError(`partition index ${p} is outside [0, ${parts})`);
  const { lo, hi } = partitionRange(ds.count, parts, p);
  return {
    index: p,
    lo,
    hi,
    count: hi - lo,
    dim: ds.dim,
    pixels: ds.images.subarray(lo * ds.dim, hi * ds.dim),
    labels: ds.labels.subarray(lo, hi),
  };
}

/** All P partitions of ds, in order (memory shared with ds). */
export function partitionDataset(ds: Dataset, parts: number): Partition[] {
  checkDataset(ds);
  return Array.from({ length: parts }, (_, p) => cutPartition(ds, parts, p));
}
