/**
 * The BlobCache contract (client/worker/worker.ts), runtime-neutral, like
 * test/webgpu/cases.ts: every cache passes the same cases, each run on a
 * fresh, empty cache.
 *   memory (MemoryBlobCache): test/core/blob-cache.test.ts (Vitest)
 *   disk (the Deno worker's DiskBlobCache): test/deno/blob-cache.deno.test.ts
 *   IndexedDB (the browser's BrowserBlobCache): test/web/idb-cache.test.ts, in Chromium
 * No test framework here: a failed check throws.
 */
import type { BlobCache } from '../../client/worker/worker.ts';

export interface BlobCacheUnderTest {
  /** a fresh, empty cache */
  readonly fresh: () => Promise<BlobCache>;
  /** a second cache over the same storage as the last fresh one, when the cache persists (disk, IndexedDB) */
  readonly reopen?: () => Promise<BlobCache>;
}

export interface BlobCacheCase {
  readonly name: string;
  run(t: BlobCacheUnderTest): Promise<void>;
}

/** A blob's stand-in hash: 64 hex digits (what the caches accept as a name). */
export const hashOf = (n: number): string => n.toString(16).padStart(64, '0');

function bytesOf(n: number, length = 1000): Uint8Array {
  const b = new Uint8Array(length);
  let x = n * 2654435761;
  for (let i = 0; i < length; i++) b[i] = (x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 24;
  return b;
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(what);
}

function same(a: Uint8Array | undefined, b: Uint8Array, what: string): void {
  check(a !== undefined, `${what}: a miss`);
  check(a!.length === b.length, `${what}: ${a!.length} bytes, expected ${b.length}`);
  for (let i = 0; i < b.length; i++) if (a![i] !== b[i]) throw new Error(`${what}: byte ${i} is ${a![i]}, expected ${b[i]}`);
}

const sorted = (xs: string[]): string => JSON.stringify([...xs].sort());

export const BLOB_CACHE_CASES: readonly BlobCacheCase[] = [
  {
    name: 'a fresh cache misses and lists nothing',
    async run(t) {
      const c = await t.fresh();
      check((await c.get(hashOf(1))) === undefined, 'get of an unknown hash is not undefined');
      check(sorted(await c.partitions()) === '[]', `partitions of a fresh cache: ${sorted(await c.partitions())}`);
    },
  },
  {
    name: 'what is put comes back byte for byte, and is listed',
    async run(t) {
      const c = await t.fresh();
      const a = bytesOf(1);
      const b = bytesOf(2, 1 << 20); // 1 MiB
      await c.put(hashOf(1), a);
      await c.put(hashOf(2), b);
      same(await c.get(hashOf(1)), a, 'blob 1');
      same(await c.get(hashOf(2)), b, 'blob 2 (1 MiB)');
      check(sorted(await c.partitions()) === sorted([hashOf(1), hashOf(2)]), `partitions: ${sorted(await c.partitions())}`);
    },
  },
  {
    name: 'putting a hash twice keeps one entry',
    async run(t) {
      const c = await t.fresh();
      await c.put(hashOf(3), bytesOf(3));
      await c.put(hashOf(3), bytesOf(3));
      check((await c.partitions()).length === 1, `partitions after two puts: ${sorted(await c.partitions())}`);
      same(await c.get(hashOf(3)), bytesOf(3), 'blob 3');
    },
  },
  {
    name: 'a deleted blob is gone and unlisted; deleting an unknown hash is harmless',
    async run(t) {
      const c = await t.fresh();
      await c.put(hashOf(4), bytesOf(4));
      await c.put(hashOf(5), bytesOf(5));
      await c.delete(hashOf(4));
      await c.delete(hashOf(99));
      check((await c.get(hashOf(4))) === undefined, 'the deleted blob still reads');
      check(sorted(await c.partitions()) === sorted([hashOf(5)]), `partitions after the delete: ${sorted(await c.partitions())}`);
      same(await c.get(hashOf(5)), bytesOf(5), 'the other blob');
      await c.put(hashOf(4), bytesOf(4));
      same(await c.get(hashOf(4)), bytesOf(4), 'blob 4 put again');
    },
  },
  {
    name: 'a persistent cache opened again still holds its blobs',
    async run(t) {
      if (!t.reopen) return; // memory: nothing outlives the instance
      const c = await t.fresh();
      await c.put(hashOf(6), bytesOf(6));
      await c.put(hashOf(7), bytesOf(7));
      await c.delete(hashOf(7));
      const again = await t.reopen();
      same(await again.get(hashOf(6)), bytesOf(6), 'blob 6 after reopening');
      check((await again.get(hashOf(7))) === undefined, 'the deleted blob came back after reopening');
      check(sorted(await again.partitions()) === sorted([hashOf(6)]), `partitions after reopening: ${sorted(await again.partitions())}`);
    },
  },
];
