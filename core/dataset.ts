/**
 * An image data set in memory, the shape every part of Tessera shares:
 * N = count examples, D = dim = rows x cols pixels each, row-major, one byte
 * per pixel (0..255) and one byte per label. Runtime-neutral.
 */

export interface Dataset {
  /** N x D pixel intensities 0..255, example after example */
  readonly images: Uint8Array;
  /** N labels */
  readonly labels: Uint8Array;
  /** N */
  readonly count: number;
  readonly rows: number;
  readonly cols: number;
  /** D = rows * cols */
  readonly dim: number;
}

/** Every data set error: a malformed file, a failed download, a bad partition blob. */
export class DatasetError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DatasetError';
  }
}

/** Throws DatasetError unless the arrays agree with count, rows, cols and dim. */
export function checkDataset(ds: Dataset, name = 'data set'): void {
  const { count, rows, cols, dim } = ds;
  for (const [k, v] of Object.entries({ count, rows, cols, dim })) {
    if (!Number.isSafeInteger(v) || v < 0) throw new DatasetError(`${name}: ${k} is ${v}, expected a non-negative integer`);
  }
  if (dim !== rows * cols) throw new DatasetError(`${name}: dim is ${dim}, expected rows x cols = ${rows * cols}`);
  if (ds.images.length !== count * dim) {
    throw new DatasetError(`${name}: ${ds.images.length} pixel bytes, expected count x dim = ${count * dim}`);
  }
  if (ds.labels.length !== count) throw new DatasetError(`${name}: ${ds.labels.length} labels, expected count = ${count}`);
}

/**
 * The first n examples (all of them when n >= count), sharing memory with ds.
 * n must be a non-negative integer.
 */
export function subset(ds: Dataset, n: number): Dataset {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`subset size must be a non-negative integer, got ${n}`);
  const count = Math.min(n, ds.count);
  if (count === ds.count) return ds;
  return { ...ds, count, images: ds.images.subarray(0, count * ds.dim), labels: ds.labels.subarray(0, count) };
}

/** How many examples carry each label 0..classes-1; throws on a label >= classes. */
export function labelHistogram(ds: Dataset, classes = 10): number[] {
  const h = new Array<number>(classes).fill(0);
  for (let i = 0; i < ds.count; i++) {
    const y = ds.labels[i]!;
    if (y >= classes) throw new DatasetError(`example ${i} has label ${y}, expected 0..${classes - 1}`);
    h[y]!++;
  }
  return h;
}
