/**
 * A worker's copy of the published weights (weights-delta.ts) in a job with
 * a training config: it holds one version and applies the lease's deltas
 * from it on to the lease's version when the lease reaches back to it and
 * they weigh less than the whole blob; otherwise (it joined mid-job, its
 * version is too old, or a delta failed to apply or to hash right) it
 * downloads the whole weights. Whatever it holds hashes to the
 * coordinator's blob of that version.
 */
import type { JobConfig } from '../../core/model/config.ts';
import type { Params } from '../../core/model/params.ts';
import { decodeWeights, encodeWeights, type DeltaRef } from '../../core/protocol/index.ts';
import { applyWeightsDelta, type HeldWeights } from '../../core/protocol/weights-delta.ts';

/** Where the lease's weights can come from. */
export interface WeightsOffer {
  readonly jobId: string;
  /** the whole blob of the version */
  readonly weights: { readonly hash: string; readonly bytes: number; readonly version: number };
  /** deltas of the last versions, oldest first, the last ending at `weights.version` */
  readonly deltas?: readonly DeltaRef[];
}

export interface HolderStats {
  wholeDownloads: number;
  deltasApplied: number;
  /** deltas that failed to apply or to hash right (whole weights followed) */
  deltasRefused: number;
}

export class WeightsHolder {
  private held: (HeldWeights & { readonly jobId: string }) | null = null;
  /** the config and shapes of the held weights' job (to re-encode them: blob()) */
  private job: { cfg: JobConfig; shapes: ReadonlyMap<string, readonly number[]> } | null = null;
  private scratch: Uint8Array | undefined;
  readonly stats: HolderStats = { wholeDownloads: 0, deltasApplied: 0, deltasRefused: 0 };

  /** `fetch` returns a blob's bytes, checked against its hash. */
  constructor(private readonly fetch: (hash: string, kind: 'weights' | 'delta') => Promise<Uint8Array>) {}

  get version(): number | null {
    return this.held?.version ?? null;
  }

  get hash(): string | null {
    return this.held?.hash ?? null;
  }

  /** Forgets the held weights (e.g. the job changed). */
  drop(): void {
    this.held = null;
  }

  /** The whole weights blob of the held version, if it has this hash (re-encoded: the donate page's filters). */
  blob(hash: string): Uint8Array | undefined {
    const h = this.held;
    if (!h || h.hash !== hash || !this.job) return undefined;
    return encodeWeights(this.job.cfg, h.params, this.job.shapes, h.version, h.jobId);
  }

  /** The weights of the offer's version: held already, by delta, or whole. */
  async get(cfg: JobConfig, shapes: ReadonlyMap<string, readonly number[]>, offer: WeightsOffer): Promise<Params> {
    this.job = { cfg, shapes };
    const h = this.held;
    if (h && h.jobId === offer.jobId && h.version === offer.weights.version && h.hash === offer.weights.hash) return h.params;
    // the deltas from the held version on, if the offer reaches back to it and they cost less than the whole blob
    const chain = offer.deltas ?? [];
    const at = h && h.jobId === offer.jobId ? chain.findIndex((d) => d.from === h.version && d.fromHash === h.hash) : -1;
    const path = at >= 0 ? chain.slice(at) : [];
    if (h && path.length && path.reduce((n, d) => n + d.bytes, 0) < offer.weights.bytes) {
      try {
        let cur: HeldWeights = h;
        for (const d of path) {
          const bytes = await this.fetch(d.hash, 'delta');
          this.scratch ??= new Uint8Array(0);
          cur = (await applyWeightsDelta(cfg, shapes, cur, bytes, this.scratch.length ? this.scratch : undefined)).held;
          this.stats.deltasApplied++;
        }
        if (cur.hash !== offer.weights.hash) throw new Error(`deltas give weights ${cur.hash.slice(0, 12)}, the lease names ${offer.weights.hash.slice(0, 12)}`);
        this.held = { ...cur, jobId: offer.jobId };
        return cur.params;
      } catch {
        // the held copy may be half-updated: never use it again
        this.held = null;
        this.stats.deltasRefused++;
      }
    }
    const bytes = await this.fetch(offer.weights.hash, 'weights');
    const { params, version } = decodeWeights(bytes, shapes);
    if (version !== offer.weights.version) throw new Error(`weights blob holds version ${version}, the lease names ${offer.weights.version}`);
    // own copies: deltas update them in place, the blob's buffer may be reused
    const own: Params = new Map([...params].map(([k, v]) => [k, v.slice()]));
    this.held = { jobId: offer.jobId, version, hash: offer.weights.hash, params: own };
    this.scratch = new Uint8Array(bytes.length);
    this.stats.wholeDownloads++;
    return own;
  }
}
