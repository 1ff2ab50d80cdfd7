import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { partitionRange } from '../../core/model/plan.ts';
import { DatasetError, type Dataset } from '../../core/dataset.ts';
import { decodePartition, encodePartition, PARTITION_HEADER_BYTES } from '../../core/protocol/partition.ts';
import { blobHash } from '../../core/protocol/paths.ts';
import { batchFromPartition } from '../../core/task.ts';
import { cutPartition, partitionDataset } from '../../datasets/partition.ts';

/** 103 examples of 3 x 5 pixels: pixel value and label derived from the example index. */
function dataset(count = 103, rows = 3, cols = 5): Dataset {
  const dim = rows * cols;
  const images = new Uint8Array(count * dim);
  for (let i = 0; i < images.length; i++) images[i] = (i * 37 + 11) & 0xff;
  const labels = Uint8Array.from({ length: count }, (_, i) => (i * 7 + 3) % 10);
  return { images, labels, count, rows, cols, dim };
}

describe('partitions', () => {
  it('cover the data set contiguously with the ranges of partitionRange', () => {
    const ds = dataset();
    const parts = partitionDataset(ds, 4);
    expect(parts.map((p) => [p.lo, p.hi])).toEqual([0, 1, 2, 3].map((p) => Object.values(partitionRange(103, 4, p))));
    expect(parts.reduce((n, p) => n + p.count, 0)).toBe(103);
    const p2 = parts[2]!;
    expect(p2.pixels).toEqual(ds.images.subarray(p2.lo * ds.dim, p2.hi * ds.dim));
    expect(p2.labels).toEqual(ds.labels.subarray(p2.lo, p2.hi));
  });

  it('round-trip through the blob', () => {
    const ds = dataset();
    for (const part of partitionDataset(ds, 3)) {
      const blob = encodePartition(part);
      expect(new TextDecoder().decode(blob.subarray(0, 4))).toBe('TSPT');
      expect(blob.length).toBe(PARTITION_HEADER_BYTES + part.count * (ds.dim + 1));
      const back = decodePartition(blob);
      expect(back).toEqual({ ...part, pixels: part.pixels, labels: part.labels });
    }
  });

  it('refuse bad arguments', () => {
    expect(() => cutPartition(dataset(), 3, 3)).toThrow(/partition index 3 is outside \[0, 3\)/);
    expect(() => cutPartition(dataset(), 0, 0)).toThrow(/positive integer/);
  });

  it('hash to SHA-256 hex, the same as node:crypto', async () => {
    const blob = encodePartition(cutPartition(dataset(), 2, 1));
    const h = await blobHash(blob);
    expect(h).toMatch(/^[0-9a-f]{64}$/);
    expect(h).toBe(createHash('sha256').update(blob).digest('hex'));
    const padded = new Uint8Array(blob.length + 9);
    padded.set(blob, 9);
    expect(await blobHash(padded.subarray(9))).toBe(h);
  });

  it('give an ExampleBatch for global ids, in the order asked', () => {
    const ds = dataset();
    const part = decodePartition(encodePartition(cutPartition(ds, 4, 1)));
    const ids = [part.hi - 1, part.lo, part.lo + 5];
    const b = batchFromPartition(part, Uint32Array.from(ids));
    expect(b.dim).toBe(ds.dim);
    expect(Array.from(b.ids)).toEqual(ids);
    ids.forEach((id, k) => {
      expect(b.pixels.subarray(k * ds.dim, (k + 1) * ds.dim)).toEqual(ds.images.subarray(id * ds.dim, (id + 1) * ds.dim));
      expect(b.labels[k]).toBe(ds.labels[id]);
    });
    expect(batchFromPartition(part, []).pixels.length).toBe(0);
    expect(() => batchFromPartition(part, [part.hi])).toThrow(`example ${part.hi} is not in partition 1, which holds [${part.lo}, ${part.hi})`);
  });
});

describe('partition blob corruption gives a clear error', () => {
  const blob = () => encodePartition(cutPartition(dataset(), 4, 2));
  const setU32 = (b: Uint8Array, at: number, v: number) => new DataView(b.buffer).setUint32(at, v, true);
  const err = (b: Uint8Array) => {
    try {
      decodePartition(b, 'part-2.bin');
    } catch (e) {
      expect(e).toBeInstanceOf(DatasetError);
      return (e as Error).message;
    }
    throw new Error('expected an error');
  };

  it('wrong magic', () => {
    const b = blob();
    b[0] = 0x3c;
    expect(err(b)).toMatch(/^part-2\.bin: wrong magic "<SPT", expected "TSPT"/);
  });

  it('unsupported version', () => {
    const b = blob();
    setU32(b, 4, 2);
    expect(err(b)).toMatch(/format version 2, this build reads version 1/);
  });

  it('truncated header and truncated data', () => {
    expect(err(blob().subarray(0, 27))).toMatch(/truncated: 27 bytes, expected at least the 28-byte header/);
    const b = blob();
    expect(err(b.subarray(0, b.length - 1))).toMatch(new RegExp(`truncated: ${b.length - 1} bytes, 26 examples of 15 pixels need ${b.length}`));
  });

  it('trailing bytes', () => {
    const b = blob();
    const long = new Uint8Array(b.length + 2);
    long.set(b);
    expect(err(long)).toMatch(/2 trailing bytes/);
  });

  it('inconsistent counts', () => {
    const b = blob();
    setU32(b, 20, 25); // count
    expect(err(b)).toMatch(/inconsistent header: range \[51, 77\) but count 25/);
    const c = blob();
    setU32(c, 12, 80); // lo > hi
    expect(err(c)).toMatch(/inconsistent header/);
  });

  it('encodePartition refuses an inconsistent partition', () => {
    const p = cutPartition(dataset(), 4, 2);
    expect(() => encodePartition({ ...p, count: p.count + 1 })).toThrow(/holds 26 examples, count says 27/);
    expect(() => encodePartition({ ...p, labels: p.labels.subarray(1) })).toThrow(/25 labels, expected 390 and 26/);
  });
});
