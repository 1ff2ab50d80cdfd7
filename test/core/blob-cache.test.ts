/** The BlobCache contract (blob-cache.case.ts) on the in-memory cache, plus its own eviction. */
import { describe, expect, it } from 'vitest';
import { MemoryBlobCache } from '../../client/worker/worker.ts';
import { BLOB_CACHE_CASES, hashOf } from './blob-cache.case.ts';

describe('BlobCache contract: memory', () => {
  for (const c of BLOB_CACHE_CASES) it(c.name, () => c.run({ fresh: async () => new MemoryBlobCache() }));
});

describe('MemoryBlobCache', () => {
  it('drops the least recently used blobs beyond its size', async () => {
    const c = new MemoryBlobCache(2500);
    await c.put(hashOf(1), new Uint8Array(1000));
    await c.put(hashOf(2), new Uint8Array(1000));
    await c.get(hashOf(1)); // 1 is now the most recently used
    await c.put(hashOf(3), new Uint8Array(1000));
    expect((await c.partitions()).sort()).toEqual([hashOf(1), hashOf(3)]);
  });
});
