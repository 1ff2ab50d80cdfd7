/** The BlobCache contract on the browser's IndexedDB cache, in a page: idb-cache.test.ts calls window.runBlobCacheCases(). */
import { BrowserBlobCache, IdbBlobCache } from '../../client/web/idb-cache.ts';
import { BLOB_CACHE_CASES } from '../core/blob-cache.case.ts';

export interface CacheCaseResult {
  readonly name: string;
  readonly ok: boolean;
  readonly error?: string;
}

async function runBlobCacheCases(): Promise<CacheCaseResult[]> {
  const results: CacheCaseResult[] = [];
  let n = 0;
  for (const c of BLOB_CACHE_CASES) {
    let db = '';
    try {
      await c.run({
        fresh: async () => new BrowserBlobCache(new IdbBlobCache({ dbName: (db = `tessera-case-${n++}`) })),
        reopen: async () => new BrowserBlobCache(new IdbBlobCache({ dbName: db })),
      });
      results.push({ name: c.name, ok: true });
    } catch (e) {
      results.push({ name: c.name, ok: false, error: String((e as Error).stack ?? e) });
    }
  }
  return results;
}

(globalThis as unknown as { runBlobCacheCases: typeof runBlobCacheCases }).runBlobCacheCases = runBlobCacheCases;
