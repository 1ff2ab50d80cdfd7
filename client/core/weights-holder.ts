/**
 * A worker's copy of the published weights (weights-delta.ts) in a job with
 * a training config: it holds one version, takes the delta from it to the
 * lease's version when the lease offers one, and otherwise (it joined
 * mid-job, its version is too old, or a delta failed to apply or to hash
 * right) downloads the whole weights. Whatever it holds hashes to the
 * coordinator's blob of that version.
 */
import type { JobConfig } from './model/config.ts';
import type { Params } from './model/params.ts';
import { decodeWeights } from './protocol.ts';
import { applyWeightsDelta, type HeldWeights } from './weights-delta.ts';

/** Where the lease's weights can come from. */
export interface WeightsOffer {
  readonly jobId: string;
  /** the whole blob of the version */
  readonly weights: { readonly hash: string; readonly version: number };
  /** a delta from version `from` (blob hash `fromHash`) to `weights.version` */
  readonly delta?: { readonly hash: string; readonly from: number; readonly fromHash: string };
}

export interface HolderStats {
  wholeDownloads: number;
  deltasApplied: number;
  /** deltas that failed to apply or to hash right (whole weights followed) */
  deltasRefused: number;
}

export class WeightsHolder {
  private held: (HeldWeights & { readonly jobId: string }) | null = null;
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

  /** The weights of the offer's version: held already, by delta, or whole. */
  async get(cfg: JobConfig, shapes: ReadonlyMap<string, readonly number[]>, offer: WeightsOffer): Promise<Params> {
    const h = this.held;
    if (h && h.jobId === offer.jobId && h.version === offer.weights.version && h.hash === offer.weights.hash) return h.params;
    const d = offer.delta;
    if (h && d && h.jobId === offer.jobId && h.version === d.from && h.hash === d.fromHash) {
      try {
        const bytes = await this.fetch(d.hash, 'delta');
        this.scratch ??= new Uint8Array(0);
        const r = await applyWeightsDelta(cfg, shapes, h, bytes, this.scratch.length ? this.scratch : undefined);
        if (r.held.hash !== offer.weights.hash) throw new Error(`delta gives weights ${r.held.hash.slice(0, 12)}, the lease names ${offer.weights.hash.slice(0, 12)}`);
        this.held = { ...r.held, jobId: offer.jobId };
        this.stats.deltasApplied++;
        return this.held.params;
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
