/**
 * Content-addressed blobs: the weights of each version and the partitions,
 * served by hash. Weights of an old version are retired (asked for, they
 * answer `gone`); a retired weights buffer is reused for a later version once
 * no response is still sending it (the holds).
 */
import { createHash } from 'node:crypto';
import { DomainError } from './errors.ts';

export interface Blob {
  readonly bytes: Uint8Array;
  readonly type: string;
  /** responses still sending `bytes` (see hold) */
  sending: number;
  /** no longer served (an old version's weights) */
  retired: boolean;
  /** a weights buffer: reused for a later version once retired and sent */
  readonly reuse: boolean;
}

export class BlobStore {
  private readonly blobs = new Map<string, Blob>();
  /** weights hashes no longer served */
  private readonly gone = new Set<string>();
  /**
   * Buffers for the weights blobs of later versions: writing reused memory
   * is several times faster than fresh pages, which the OS must map in first.
   * A buffer comes here only once nothing serves or sends it any more.
   */
  private readonly spares: Uint8Array[] = [];

  /** Serves `bytes` under its SHA-256; returns the hash. `reuse`: a weights buffer. */
  put(bytes: Uint8Array, type: string, reuse = false): string {
    const hash = createHash('sha256').update(bytes).digest('hex');
    if (this.blobs.has(hash)) {
      // The same content is already served (e.g. weights republished on resume): keep that entry.
      if (reuse) this.spare(bytes);
      return hash;
    }
    this.blobs.set(hash, { bytes, type, sending: 0, retired: false, reuse });
    this.gone.delete(hash);
    return hash;
  }

  /** The blob of a hash; `gone` for retired weights, `not-found` for any other. */
  get(hash: string): Blob {
    const b = this.blobs.get(hash);
    if (b) return b;
    if (this.gone.has(hash)) throw new DomainError('gone', `blob ${hash} was the weights of an old version; lease a new task`);
    throw new DomainError('not-found', `no blob ${hash}`);
  }

  /** Stops serving a blob (a partition of a job that is no longer active). */
  delete(hash: string): void {
    this.blobs.delete(hash);
  }

  /** Stops serving old weights: asked for, they answer `gone`; the buffer is spared once sent. */
  retire(hash: string): void {
    const b = this.blobs.get(hash);
    this.blobs.delete(hash);
    this.gone.add(hash);
    if (this.gone.size > 10_000) this.gone.clear();
    if (b) {
      b.retired = true;
      if (b.reuse && b.sending === 0) this.spare(b.bytes);
    }
  }

  /** A spare weights buffer to encode the next version into, if any. */
  takeSpare(): Uint8Array | undefined {
    return this.spares.pop();
  }

  /**
   * Marks a blob as being sent; the returned function ends that. The HTTP
   * layer calls it when the response is done (a weights buffer is reused only
   * after its last response has ended, so no client can read a later
   * version's bytes under this hash); where no end is reported, the buffer
   * is simply never reused.
   */
  hold(hash: string): () => void {
    const b = this.blobs.get(hash);
    if (!b) return () => undefined;
    b.sending++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      b.sending--;
      if (b.retired && b.reuse && b.sending === 0) this.spare(b.bytes);
    };
  }

  private spare(bytes: Uint8Array): void {
    if (this.spares.length < 2) this.spares.push(new Uint8Array(bytes.buffer));
  }
}
