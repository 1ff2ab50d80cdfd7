/**
 * The runtime-neutral part of datasets/ (Node, Deno, browsers): the Dataset
 * shape, IDX files and partition blobs. The MNIST loader, which reads files
 * and downloads, is Node-only: import it from './mnist.ts'.
 */
export { checkDataset, DatasetError, labelHistogram, subset, type Dataset } from './dataset.ts';
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
export {
  batchFromPartition,
  cutPartition,
  decodePartition,
  encodePartition,
  PARTITION_HEADER_BYTES,
  PARTITION_MAGIC,
  PARTITION_VERSION,
  partitionDataset,
  partitionHash,
  type Partition,
} from './partition.ts';
