/** The BlobCache contract (test/core/blob-cache.case.ts) on the Deno worker's disk cache. */
import { DiskBlobCache } from '../../client/deno/disk-cache.ts';
import { BLOB_CACHE_CASES } from '../core/blob-cache.case.ts';

for (const c of BLOB_CACHE_CASES) {
  Deno.test(`BlobCache contract: disk: ${c.name}`, async () => {
    const dirs: string[] = [];
    try {
      await c.run({
        fresh: async () => {
          dirs.push(await Deno.makeTempDir({ prefix: 'tessera-disk-cache-' }));
          return new DiskBlobCache(dirs.at(-1)!);
        },
        reopen: async () => new DiskBlobCache(dirs.at(-1)!),
      });
    } finally {
      for (const d of dirs) await Deno.remove(d, { recursive: true });
    }
  });
}

Deno.test('disk cache: a write leaves no temporary file behind, and foreign files are not listed', async () => {
  const dir = await Deno.makeTempDir({ prefix: 'tessera-disk-cache-' });
  try {
    await Deno.writeFile(`${dir}/notes.txt`, new Uint8Array([1]));
    const c = new DiskBlobCache(dir);
    const hash = 'ab'.repeat(32);
    await c.put(hash, new Uint8Array([1, 2, 3]));
    const names: string[] = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    if (JSON.stringify(names.sort()) !== JSON.stringify([hash, 'notes.txt'])) throw new Error(`files: ${names}`);
    if (JSON.stringify(await c.partitions()) !== JSON.stringify([hash])) throw new Error(`partitions: ${await c.partitions()}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
