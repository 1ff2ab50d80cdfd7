/**
 * Where a worker keeps partition blobs between tasks: the BlobCache
 * interface (disk in Deno, IndexedDB in browsers) and the in-memory one.
 */

/**
 * Partition blobs by content hash. (Weights, a new blob every iteration,
 * stay with the worker, in buffers it reuses.)
 */
export interface BlobCache {
  get(hash: string): Promise<Uint8Array | undefined>;
  put(hash: string, bytes: Uint8Array): Promise<void>;
  /** forgets a blob (one that failed its hash check) */
  delete(hash: string): Promise<void>;
  /** hashes of cached partitions (sent with lease requests so the coordinator can prefer this worker for them) */
  partitions(): Promise<string[]>;
}

/** A cache in memory: partitions up to `maxBytes` (least recently used go first). */
export class MemoryBlobCache implements BlobCache {
  private readonly parts = new Map<string, Uint8Array>();
  private bytes = 0;

  constructor(private readonly maxBytes = 512 * 1024 * 1024) {}

  async get(hash: string): Promise<Uint8Array | undefined> {
    const p = this.parts.get(hash);
    if (p) {
      this.parts.delete(hash);
      this.parts.set(hash, p);
    }
    return p;
  }

  async put(hash: string, bytes: Uint8Array): Promise<void> {
    if (this.parts.has(hash)) return;
    this.parts.set(hash, bytes);
    this.bytes += bytes.length;
    for (const [h, b] of this.parts) {
      if (this.bytes <= this.maxBytes || h === hash) break;
      this.parts.delete(h);
      this.bytes -= b.length;
    }
  }

  async delete(hash: string): Promise<void> {
    const b = this.parts.get(hash);
    if (!b) return;
    this.parts.delete(hash);
    this.bytes -= b.length;
  }

  async partitions(): Promise<string[]> {
    return [...this.parts.keys()];
  }
}
