/**
 * The MNIST downloader against a local HTTP server on 127.0.0.1 that serves
 * the shared copy of the files: never the internet.
 *   /good/<file>  the file
 *   /bad/<file>   the file with one byte flipped
 *   /gone/<file>  404, like every other path
 *   /hang/<file>  never answers
 *   /slow/<file>  the file in 8 pieces, 150 ms apart (slow, but never silent for long)
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { downloadMnist, loadMnist, MNIST_FILES } from '../../datasets/mnist.ts';

const SHARED = fileURLToPath(new URL('../../../shared/datasets/mnist', import.meta.url));
const haveShared = existsSync(join(SHARED, 'train-images-idx3-ubyte.gz'));
if (!haveShared) console.warn(`skipping the downloader tests: ${SHARED} has no MNIST files to serve`);
const FILES: readonly string[] = Object.values(MNIST_FILES).map((f) => f.file);

describe.skipIf(!haveShared)('MNIST download', () => {
  let server: Server;
  let base: string;
  let cache: string;
  const requests: string[] = [];

  beforeAll(async () => {
    server = createServer(async (req, res) => {
      const url = req.url ?? '/';
      requests.push(url);
      const [, mode, file] = url.split('/');
      if (mode === 'hang') return; // leaves the request open
      if ((mode !== 'good' && mode !== 'bad' && mode !== 'slow') || !file || !FILES.includes(file)) {
        res.writeHead(404, { 'content-type': 'text/html' }).end('<html>not found</html>');
        return;
      }
      const bytes = await readFile(join(SHARED, file));
      if (mode === 'bad') bytes[bytes.length >> 1]! ^= 0x01;
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bytes.length });
      if (mode !== 'slow') return void res.end(bytes);
      const piece = Math.ceil(bytes.length / 8);
      for (let at = 0; at < bytes.length; at += piece) {
        res.write(bytes.subarray(at, at + piece));
        await new Promise((ok) => setTimeout(ok, 150));
      }
      res.end();
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((ok) => server.close(ok));
  });
  beforeEach(async () => {
    if (cache) await rm(cache, { recursive: true, force: true });
    cache = await mkdtemp(join(tmpdir(), 'tessera-cache-'));
    requests.length = 0;
  });
  afterAll(async () => {
    await rm(cache, { recursive: true, force: true });
  });

  it('downloads, verifies and caches the four files, then loads from the cache without fetching', async () => {
    const m = await loadMnist({ source: 'download', mirrors: [`${base}/good/`], cacheDir: cache, trainLimit: 100 });
    expect(m.source).toBe(`download:${cache}`);
    expect(m.train.count).toBe(100);
    expect(m.test).toMatchObject({ count: 10000, rows: 28, cols: 28 });
    expect(m.train.labels[0]).toBe(5);
    expect((await readdir(cache)).sort()).toEqual([...FILES].sort());
    for (const f of FILES) {
      expect(createHash('sha256').update(await readFile(join(cache, f))).digest('hex')).toBe(
        Object.values(MNIST_FILES).find((x) => x.file === f)!.sha256,
      );
    }
    expect(requests).toHaveLength(4);
    requests.length = 0;
    await downloadMnist({ mirrors: [`${base}/good/`], cacheDir: cache });
    expect(requests).toEqual([]);
  });

  it('reads the mirror and the cache folder from TESSERA_MNIST_MIRROR and TESSERA_CACHE_DIR, trying mirrors in order', async () => {
    const dir = await downloadMnist({ env: { TESSERA_MNIST_MIRROR: `${base}/gone, ${base}/good`, TESSERA_CACHE_DIR: cache } });
    expect(dir).toBe(cache);
    expect(requests).toEqual(FILES.flatMap((f) => [`/gone/${f}`, `/good/${f}`]));
    expect((await readdir(cache)).sort()).toEqual([...FILES].sort());
  });

  it('a corrupted file is a checksum error naming the file and both hashes, and nothing is cached', async () => {
    const file = MNIST_FILES.trainImages.file;
    const bad = await readFile(join(SHARED, file));
    bad[bad.length >> 1]! ^= 0x01;
    const md5 = createHash('md5').update(bad).digest('hex');
    const sha = createHash('sha256').update(bad).digest('hex');
    const err = await downloadMnist({ mirrors: [`${base}/bad/`], cacheDir: cache }).then(
      () => null,
      (e: Error) => e,
    );
    expect(err?.name).toBe('DatasetError');
    expect(err?.message).toContain(`${base}/bad/${file}: checksum mismatch for ${file}`);
    expect(err?.message).toContain(`md5 expected ${MNIST_FILES.trainImages.md5}, got ${md5}`);
    expect(err?.message).toContain(`sha256 expected ${MNIST_FILES.trainImages.sha256}, got ${sha}`);
    expect(await readdir(cache)).toEqual([]);
  });

  it('a 404 on every mirror names each URL and status, and leaves the cache empty', async () => {
    const p = downloadMnist({ mirrors: [`${base}/gone/`, `${base}/gone2`], cacheDir: cache });
    await expect(p).rejects.toThrow(`${base}/gone/${MNIST_FILES.trainImages.file}: HTTP 404 Not Found`);
    await expect(p).rejects.toThrow(`${base}/gone2/${MNIST_FILES.trainImages.file}: HTTP 404`);
    await expect(p).rejects.toThrow(/set TESSERA_MNIST_MIRROR/);
    expect(await readdir(cache)).toEqual([]);
  });

  it('a mirror that never answers times out and the next one is used', async () => {
    // the time limit is on silence, not on the whole download: the good
    // mirror's larger files may take longer than 1 s on a loaded machine
    await downloadMnist({ mirrors: [`${base}/hang/`, `${base}/good/`], cacheDir: cache, timeoutMs: 1000 });
    expect(requests.filter((r) => r.startsWith('/hang/'))).toHaveLength(4);
    expect(requests.filter((r) => r.startsWith('/good/'))).toHaveLength(4);
  });

  it('a slow mirror that keeps sending is not given up, though the whole download outlasts the time limit', async () => {
    const t0 = performance.now();
    await downloadMnist({ mirrors: [`${base}/slow/`, `${base}/good/`], cacheDir: cache, timeoutMs: 1000 });
    expect(performance.now() - t0).toBeGreaterThan(4 * 1000); // 4 files x 8 pieces x 150 ms
    expect(requests.filter((r) => r.startsWith('/good/'))).toHaveLength(0);
    expect((await readdir(cache)).sort()).toEqual([...FILES].sort());
  });

  it('a damaged cached file is replaced, the good ones are kept', async () => {
    for (const f of FILES) await copyFile(join(SHARED, f), join(cache, f));
    const labels = MNIST_FILES.trainLabels.file;
    await writeFile(join(cache, labels), 'garbage');
    await downloadMnist({ mirrors: [`${base}/good/`], cacheDir: cache });
    expect(requests).toEqual([`/good/${labels}`]);
    expect(Buffer.compare(await readFile(join(cache, labels)), await readFile(join(SHARED, labels)))).toBe(0);
  });
});
