/**
 * The browser's BlobCache (client/worker/worker.ts): partitions in IndexedDB,
 * so a returning volunteer does not download them again.
 *
 * IdbBlobCache below is the IndexedDB store itself. Blobs are content-addressed (key = SHA-256 hex), so an
 * entry never goes stale; the worker core re-checks the hash of what it
 * reads. Least recently used entries go first once the cache holds more
 * than `maxBytes`.
 *
 * Works in a page and in a Web Worker (both have `indexedDB`). When IndexedDB
 * is unavailable (private windows of some browsers) every call degrades to a
 * miss and `put` does nothing: the worker then simply downloads again.
 */
import type { BlobCache } from '../worker/worker.ts';

const STORE = 'blobs';

interface Entry {
  readonly hash: string;
  readonly bytes: Uint8Array;
  readonly size: number;
  used: number;
}

export interface IdbBlobCacheOptions {
  /** database name (default "tessera-cache") */
  readonly dbName?: string;
  /** evict least recently used blobs beyond this many bytes (default 512 MiB) */
  readonly maxBytes?: number;
}

function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error('IndexedDB request failed'));
  });
}

function done(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onabort = tx.onerror = () => reject(tx.error ?? new Error('IndexedDB transaction failed'));
  });
}

export class IdbBlobCache {
  readonly maxBytes: number;
  private readonly dbName: string;
  private db: Promise<IDBDatabase | null> | null = null;

  constructor(opts: IdbBlobCacheOptions = {}) {
    this.dbName = opts.dbName ?? 'tessera-cache';
    this.maxBytes = opts.maxBytes ?? 512 * 1024 * 1024;
  }

  private open(): Promise<IDBDatabase | null> {
    this.db ??= new Promise<IDBDatabase | null>((resolve) => {
      if (typeof indexedDB === 'undefined') return resolve(null);
      const req = indexedDB.open(this.dbName, 1);
      req.onupgradeneeded = () => {
        const store = req.result.createObjectStore(STORE, { keyPath: 'hash' });
        store.createIndex('used', 'used');
      };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => resolve(null);
      req.onblocked = () => resolve(null);
    });
    return this.db;
  }

  /** The blob with this hash, or undefined. Marks it recently used. */
  async get(hash: string): Promise<Uint8Array | undefined> {
    const db = await this.open();
    if (!db) return undefined;
    try {
      const tx = db.transaction(STORE, 'readwrite');
      const store = tx.objectStore(STORE);
      const entry = (await request(store.get(hash))) as Entry | undefined;
      if (entry) {
        entry.used = Date.now();
        store.put(entry);
      }
      await done(tx);
      return entry?.bytes;
    } catch {
      return undefined;
    }
  }

  /** Stores a blob (its hash already verified by the caller), then evicts down to maxBytes. */
  async put(hash: string, bytes: Uint8Array): Promise<void> {
    const db = await this.open();
    if (!db || bytes.byteLength > this.maxBytes) return;
    try {
      const tx = db.transaction(STORE, 'readwrite');
      const entry: Entry = { hash, bytes: bytes.slice(), size: bytes.byteLength, used: Date.now() };
      tx.objectStore(STORE).put(entry);
      await done(tx);
      await this.evict(db);
    } catch {
      // Quota exceeded or the database went away: caching is an optimisation only.
    }
  }

  /** Hashes of every cached blob (sent to the coordinator so it prefers those partitions). */
  async keys(): Promise<string[]> {
    const db = await this.open();
    if (!db) return [];
    try {
      const tx = db.transaction(STORE, 'readonly');
      const keys = await request(tx.objectStore(STORE).getAllKeys());
      return keys.map(String);
    } catch {
      return [];
    }
  }

  async has(hash: string): Promise<boolean> {
    const db = await this.open();
    if (!db) return false;
    try {
      const tx = db.transaction(STORE, 'readonly');
      return (await request(tx.objectStore(STORE).count(hash))) > 0;
    } catch {
      return false;
    }
  }

  async delete(hash: string): Promise<void> {
    const db = await this.open();
    if (!db) return;
    const tx = db.transaction(STORE, 'readwrite');
    tx.objectStore(STORE).delete(hash);
    await done(tx);
  }

  /** Total bytes and entries held. */
  async usage(): Promise<{ bytes: number; entries: number }> {
    const db = await this.open();
    if (!db) return { bytes: 0, entries: 0 };
    let bytes = 0;
    let entries = 0;
    const tx = db.transaction(STORE, 'readonly');
    await new Promise<void>((resolve, reject) => {
      const cur = tx.objectStore(STORE).index('used').openCursor();
      cur.onsuccess = () => {
        const c = cur.result;
        if (!c) return resolve();
        bytes += (c.value as Entry).size;
        entries++;
        c.continue();
      };
      cur.onerror = () => reject(cur.error);
    });
    return { bytes, entries };
  }

  private async evict(db: IDBDatabase): Promise<void> {
    const { bytes } = await this.usage();
    let excess = bytes - this.maxBytes;
    if (excess <= 0) return;
    const tx = db.transaction(STORE, 'readwrite');
    const cur = tx.objectStore(STORE).index('used').openCursor();
    cur.onsuccess = () => {
      const c = cur.result;
      if (!c || excess <= 0) return;
      excess -= (c.value as Entry).size;
      c.delete();
      c.continue();
    };
    await done(tx);
  }
}

/** Partitions in IndexedDB; implements the worker core's BlobCache. */
export class BrowserBlobCache implements BlobCache {
  /** partition hashes known to be in IndexedDB (loaded once, then kept in step) */
  private known: Promise<Set<string>>;
  /** partition reads served from IndexedDB */
  hits = 0;

  constructor(readonly store: IdbBlobCache = new IdbBlobCache()) {
    this.known = store.keys().then((k) => new Set(k));
  }

  async get(hash: string): Promise<Uint8Array | undefined> {
    if (!(await this.known).has(hash)) return undefined;
    const bytes = await this.store.get(hash);
    if (bytes) this.hits++;
    else (await this.known).delete(hash);
    return bytes;
  }

  async put(hash: string, bytes: Uint8Array): Promise<void> {
    await this.store.put(hash, bytes);
    this.known = this.store.keys().then((k) => new Set(k));
  }

  async delete(hash: string): Promise<void> {
    (await this.known).delete(hash);
    await this.store.delete(hash);
  }

  async partitions(): Promise<string[]> {
    return [...(await this.known)];
  }
}
