import { describe, expect, it } from 'vitest';
import { DatasetError } from '../../core/dataset.ts';
import { encodeIdx, idxMagic, pairImagesLabels, parseIdx, parseIdxImages, parseIdxLabels } from '../../datasets/idx.ts';

/** Awkward-sized pseudo-random bytes (never zeros). */
function bytesOf(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

const N = 7, R = 5, C = 3;
const images = () => encodeIdx([N, R, C], bytesOf(N * R * C, 1));
const labels = (n = N) => encodeIdx([n], bytesOf(n, 2).map((b) => b % 10));

describe('IDX round trip', () => {
  it('uint8 images and labels keep their header and values', () => {
    const bytes = images();
    expect(Array.from(bytes.subarray(0, 4))).toEqual([0, 0, 8, 3]);
    expect(bytes.length).toBe(16 + N * R * C);
    const img = parseIdxImages(bytes, 'img');
    expect(img.type).toBe('u8');
    expect(img.dims).toEqual([N, R, C]);
    expect(img.data).toEqual(bytesOf(N * R * C, 1));
    const lab = parseIdxLabels(labels(), 'lab');
    expect(lab.dims).toEqual([N]);
    const ds = pairImagesLabels(img, lab);
    expect(ds).toMatchObject({ count: N, rows: R, cols: C, dim: R * C });
    expect(ds.images.length).toBe(N * R * C);
    expect(ds.labels.length).toBe(N);
  });

  it.each([
    ['i8', new Int8Array([-128, -1, 0, 5, 127, 3])],
    ['i16', new Int16Array([-32768, -2, 7, 300, 32767, 1])],
    ['i32', new Int32Array([-(2 ** 31), -5, 9, 70000, 2 ** 31 - 1, 11])],
    ['f32', new Float32Array([-1.5, 0.1, 3e38, -7e-39, Infinity, 2])],
    ['f64', new Float64Array([Math.PI, -1e300, 5e-324, -0.25, 1 / 3, 42])],
  ] as const)('%s values are big-endian and survive the trip', (type, data) => {
    const bytes = encodeIdx([2, 3], data);
    expect(bytes[2]).toBe(idxMagic(type, 2) >> 8);
    const back = parseIdx(bytes, 'x.idx');
    expect(back.type).toBe(type);
    expect(back.dims).toEqual([2, 3]);
    expect(Array.from(back.data)).toEqual(Array.from(data));
  });

  it('reads a view with a non-zero byte offset', () => {
    const bytes = labels();
    const padded = new Uint8Array(bytes.length + 3);
    padded.set(bytes, 3);
    expect(parseIdxLabels(padded.subarray(3), 'lab').data).toEqual(parseIdxLabels(bytes, 'lab').data);
  });

  it('accepts empty data sets (0 examples)', () => {
    expect(pairImagesLabels(parseIdxImages(encodeIdx([0, 28, 28], new Uint8Array(0)), 'i'), parseIdxLabels(labels(0), 'l')).count).toBe(0);
  });

  it('encodeIdx refuses data that does not fill the dims', () => {
    expect(() => encodeIdx([2, 2], new Uint8Array(3))).toThrow(/hold 4 values but data has 3/);
  });
});

describe('IDX corruption gives a clear error', () => {
  const err = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      expect(e).toBeInstanceOf(DatasetError);
      return (e as Error).message;
    }
    throw new Error('expected an error');
  };

  it('a file shorter than the magic number', () => {
    expect(err(() => parseIdxImages(new Uint8Array([0, 0]), 'a.idx'))).toMatch(/^a\.idx: truncated: 2 bytes/);
  });

  it('a header cut short', () => {
    expect(err(() => parseIdxImages(images().subarray(0, 10), 'b.idx'))).toMatch(/^b\.idx: truncated: 10 bytes, the header of 3 dims needs 16/);
  });

  it('data cut short', () => {
    const m = err(() => parseIdxImages(images().subarray(0, 50), 'train-images-idx3-ubyte'));
    expect(m).toMatch(/^train-images-idx3-ubyte: truncated/);
    expect(m).toContain(`dims [${N}, ${R}, ${C}] of uint8 need ${N * R * C} data bytes, the file has 34`);
  });

  it('trailing bytes', () => {
    const b = images();
    const long = new Uint8Array(b.length + 5);
    long.set(b);
    expect(err(() => parseIdxImages(long, 'c.idx'))).toMatch(/^c\.idx: 5 trailing bytes/);
  });

  it('wrong magic, with a hint for gzip and HTML', () => {
    expect(err(() => parseIdxImages(new Uint8Array([0x1f, 0x8b, 8, 0, 1, 2, 3, 4]), 'd.gz'))).toMatch(
      /^d\.gz: not an IDX file: magic number 0x1f8b0800, expected 0x00000803 \(uint8, 3 dims\); it looks gzip-compressed/,
    );
    const html = new TextEncoder().encode('<html>404</html>');
    expect(err(() => parseIdxLabels(html, 'e'))).toMatch(/expected 0x00000801 \(uint8, 1 dims\); it looks like an HTML/);
    expect(err(() => parseIdx(new Uint8Array([0, 0, 0x0a, 1, 0, 0, 0, 0]), 'f'))).toMatch(/^f: not an IDX file: magic number 0x00000a01/);
  });

  it('wrong data type', () => {
    expect(err(() => parseIdxLabels(encodeIdx([3], new Int32Array([1, 2, 3])), 'g'))).toMatch(
      /^g: magic number 0x00000c01 means int32 data, expected 0x00000801 \(uint8, 1 dims\)$/,
    );
  });

  it('wrong number of dims: images given as labels and back', () => {
    expect(err(() => parseIdxLabels(images(), 'labels-file'))).toMatch(
      /^labels-file: magic number 0x00000803 means 3 dims, expected 0x00000801 \(uint8, 1 dims\); images and labels swapped\?$/,
    );
    expect(err(() => parseIdxImages(labels(), 'images-file'))).toMatch(/^images-file: magic number 0x00000801 means 1 dims, expected 0x00000803/);
    expect(err(() => parseIdx(new Uint8Array([0, 0, 8, 0]), 'h'))).toMatch(/declares 0 dimensions/);
    expect(err(() => parseIdx(labels(), 'k', { ndims: 2 }))).toMatch(/expected 0x0000TT02 \(TT = data type, 2 dims\)/);
    expect(err(() => parseIdx(encodeIdx([1], new Float32Array(1)), 'k', { type: 'u8' }))).toMatch(/expected 0x000008NN \(uint8, NN dims\)/);
  });

  it('image count not matching label count', () => {
    const m = err(() => pairImagesLabels(parseIdxImages(images(), 'imgs'), parseIdxLabels(labels(N + 1), 'labs'), 'imgs', 'labs'));
    expect(m).toBe(`imgs holds ${N} images but labs holds ${N + 1} labels; expected the same count (mixed up train and test files?)`);
  });
});
