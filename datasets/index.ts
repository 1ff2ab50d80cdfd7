/**
 * The runtime-neutral part of datasets/ (Node, Deno, browsers): the Dataset
 * shape, IDX files and partition blobs. The MNIST loader, which reads files
 * and downloads, is Node-only: import it from './mnist.ts'.
 */
export { checkDataset, DatasetError, labelHistogram, subset, type Dataset } from '../core/dataset.ts';
export {
  encodeIdx,
  idxMagic,
  pairImagesLabels,
  parseIdx,
  parseIdxImages,
  parseIdxLabels,
  type IdxArray,
  type IdxData,
  type IdxExpect,
  type IdxType,
} from './idx.ts';
export { cutPartition, partitionDataset } from './partition.ts';
// The partition blob format is core/protocol/partition.ts's; the batch of a task, core/task.ts's.
export { decodePartition, encodePartition, PARTITION_HEADER_BYTES, PARTITION_MAGIC, PARTITION_VERSION, type Partition } from '../core/protocol/partition.ts';
export { batchFromPartition } from '../core/task.ts';
