/**
 * The weights broadcast as a chain of versions: version v+1 travels as a
 * delta against version v, holding only the tensors that changed. Both sides
 * hold the *published* weights P_v (float32), which workers compute on; the
 * coordinator also keeps its float32 master weights M (what the optimizer
 * updates) and publishes
 *     P_{v+1} = P_v + Q(M - P_v)      (f16, int8: additive, quantised)
 *     P_{v+1} = M                     (f32: the changed tensors whole)
 * for the tensors the last update changed. The quantisation error of one
 * version is carried into the next difference, so it never accumulates, and
 * both sides apply the same float32 additions to the same bits: a worker's
 * P_{v+1} is bit-identical to the coordinator's, which the hash of the whole
 * weights blob of v+1 checks. When a phase ends its tensors freeze; the
 * coordinator then snaps M to P for them (an error below one int8 step or one
 * float16 rounding), so a frozen tensor is never sent again.
 *
 * Delta blob: safetensors, tensors in the down encoding (encoded-tensors.ts),
 * metadata {format: "tessera-weights-delta", job, from, fromHash, version,
 * hash, encoding, blockSize}: applied to the whole weights blob `fromHash`
 * (version `from`) it gives the blob `hash` (version `version`).
 */
import { dequantize, encodedEntries, readEncoded, EncodingError } from './encoded-tensors.ts';
import type { JobConfig } from '../model/config.ts';
import type { Params } from '../model/params.ts';
import type { TensorEncoding } from '../model/training.ts';
import { blobHash } from './paths.ts';
import { encodeWeights } from './weights.ts';
import { encodeSafetensors, parseSafetensors, SafetensorsError } from '../safetensors.ts';

export const WEIGHTS_DELTA_FORMAT = 'tessera-weights-delta';

/** Stochastic rounding stream of the down direction (results use the round or iteration). */
const DOWN_SEED_SALT = 0x5eedd0e5;

/** A weights version both sides can hold: its float32 tensors and the hash of its whole blob. */
export interface HeldWeights {
  readonly version: number;
  readonly hash: string;
  readonly params: Params;
}

export interface DeltaMeta {
  readonly job: string;
  readonly from: number;
  readonly fromHash: string;
  readonly version: number;
  readonly hash: string;
  readonly encoding: TensorEncoding;
  readonly blockSize: number;
}

export interface PublishedVersion {
  readonly version: number;
  /** the whole weights blob of the published tensors */
  readonly blob: Uint8Array;
  readonly hash: string;
  /** the delta from the previous version (null for the first) */
  readonly delta: Uint8Array | null;
}

/** SHA-256 of a blob as lowercase hex, synchronously (the coordinator's node:crypto); blobHash's value. */
export type SyncHash = (bytes: Uint8Array) => string;

/**
 * The coordinator's side of the chain (and the in-process trainer's, which
 * must publish the same bits). Synchronous, so the coordinator publishes a
 * version inside the update that completes an iteration.
 */
export class WeightsChain {
  /** P: the published weights (owned; workers hold the same bits) */
  readonly published: Params;
  version: number;
  hash = '';

  private constructor(
    private readonly cfg: JobConfig,
    private readonly shapes: ReadonlyMap<string, readonly number[]>,
    private readonly jobId: string,
    readonly encoding: TensorEncoding,
    readonly blockSize: number,
    private readonly hashOf: SyncHash,
    published: Params,
    version: number,
  ) {
    this.published = published;
    this.version = version;
  }

  /**
   * Starts at `version` with P = M, or with P = `published` (resuming from a
   * checkpoint that kept it); copies either way.
   */
  static start(
    cfg: JobConfig,
    shapes: ReadonlyMap<string, readonly number[]>,
    jobId: string,
    encoding: TensorEncoding,
    blockSize: number,
    hashOf: SyncHash,
    master: Params,
    version: number,
    published?: Params,
    into?: Uint8Array,
  ): { chain: WeightsChain; first: PublishedVersion } {
    const p: Params = new Map([...(published ?? master)].map(([k, v]) => [k, v.slice()]));
    const chain = new WeightsChain(cfg, shapes, jobId, encoding, blockSize, hashOf, p, version);
    const blob = encodeWeights(cfg, p, shapes, version, jobId, into);
    chain.hash = hashOf(blob);
    return { chain, first: { version, blob, hash: chain.hash, delta: null } };
  }

  /**
   * Publishes `version` (> the current) from the master weights: the tensors
   * in `changed` move towards M as the encoding allows (only those that
   * differ are sent); `snap` (a phase's end: they freeze) then sets M = P
   * for them. Returns the new whole blob, its hash and the delta.
   */
  next(master: Params, changed: readonly string[], version: number, snap: boolean, into?: Uint8Array): PublishedVersion {
    if (!(version > this.version)) throw new Error(`weights chain: version ${version} does not follow ${this.version}`);
    const diffs: [string, Float32Array][] = [];
    for (const name of changed) {
      const m = master.get(name)!;
      const p = this.published.get(name)!;
      if (this.encoding === 'f32') {
        if (!sameBits(m, p)) diffs.push([name, m]);
        continue;
      }
      const d = new Float32Array(m.length);
      let any = false;
      for (let i = 0; i < m.length; i++) {
        d[i] = m[i]! - p[i]!;
        if (d[i] !== 0) any = true;
      }
      if (any) diffs.push([name, d]);
    }
    const entries = encodedEntries(diffs, this.shapes, this.encoding, this.blockSize, { seed: (this.cfg.seed ^ DOWN_SEED_SALT) >>> 0, stream: version });
    // Apply what was encoded (decoded from the entries, exactly as a worker will).
    const meta0 = { job: this.jobId, from: this.version, fromHash: this.hash, version, hash: '', encoding: this.encoding, blockSize: this.blockSize };
    const draft = encodeSafetensors(entries, deltaMetadata(meta0));
    applyDeltaTensors(this.published, draft, this.shapes, meta0);
    const blob = encodeWeights(this.cfg, this.published, this.shapes, version, this.jobId, into);
    const hash = this.hashOf(blob);
    const delta = encodeSafetensors(entries, deltaMetadata({ ...meta0, hash }));
    if (snap) for (const name of changed) master.get(name)!.set(this.published.get(name)!);
    this.version = version;
    this.hash = hash;
    return { version, blob, hash, delta };
  }
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

function deltaMetadata(m: DeltaMeta): Record<string, string> {
  return {
    format: WEIGHTS_DELTA_FORMAT,
    job: m.job,
    from: String(m.from),
    fromHash: m.fromHash,
    version: String(m.version),
    hash: m.hash,
    encoding: m.encoding,
    blockSize: String(m.blockSize),
  };
}

/** Reads and checks a delta blob's metadata (untrusted bytes, e.g. from a cache). */
export function parseDeltaMeta(bytes: Uint8Array): { meta: DeltaMeta; spans: ReturnType<typeof parseSafetensors>['spans'] } {
  const { metadata: md, spans } = parseSafetensors(bytes, { source: 'weights delta' });
  const bad = (msg: string): never => {
    throw new SafetensorsError(`weights delta: ${msg}`);
  };
  if (md.format !== WEIGHTS_DELTA_FORMAT) bad(`format ${JSON.stringify(md.format)}, expected "${WEIGHTS_DELTA_FORMAT}"`);
  const int = (k: string): number => (/^[0-9]{1,15}$/.test(md[k] ?? '') ? Number(md[k]) : bad(`"${k}" must be a non-negative integer`));
  const enc = md.encoding;
  if (enc !== 'f32' && enc !== 'f16' && enc !== 'int8') bad(`encoding ${JSON.stringify(enc)} is not f32, f16 or int8`);
  return {
    meta: { job: md.job ?? '', from: int('from'), fromHash: md.fromHash ?? '', version: int('version'), hash: md.hash ?? '', encoding: enc as TensorEncoding, blockSize: int('blockSize') },
    spans,
  };
}

/** Applies a delta blob's tensors to `params` in place (f32 replaces, f16/int8 add). */
function applyDeltaTensors(params: Params, bytes: Uint8Array, shapes: ReadonlyMap<string, readonly number[]>, meta: DeltaMeta): string[] {
  const { spans } = parseSafetensors(bytes, { source: 'weights delta' });
  const got = readEncoded(bytes, spans, shapes, meta.encoding, meta.blockSize, 'weights delta', true);
  for (const [name, t] of got) dequantize(t, params.get(name)!, meta.encoding !== 'f32');
  return [...got.keys()];
}

/**
 * A worker's side: applies the delta to the weights it holds, giving the
 * next version, and checks that the whole blob of the result has the
 * delta's hash. `held` is consumed (its changed tensors are updated in
 * place); on any failure the caller must drop it and download the whole
 * weights. Returns the new held weights and the blob (for a device cache).
 */
export async function applyWeightsDelta(cfg: JobConfig, shapes: ReadonlyMap<string, readonly number[]>, held: HeldWeights, bytes: Uint8Array, into?: Uint8Array): Promise<{ held: HeldWeights; changed: string[] }> {
  const { meta } = parseDeltaMeta(bytes);
  if (meta.from !== held.version || meta.fromHash !== held.hash) {
    throw new SafetensorsError(`weights delta goes from version ${meta.from} (${meta.fromHash.slice(0, 12)}), this worker holds ${held.version} (${held.hash.slice(0, 12)})`);
  }
  let changed: string[];
  try {
    changed = applyDeltaTensors(held.params, bytes, shapes, meta);
  } catch (e) {
    if (e instanceof EncodingError) throw new SafetensorsError(`weights delta: ${e.message}`);
    throw e;
  }
  const hash = await blobHash(encodeWeights(cfg, held.params, shapes, meta.version, meta.job, into));
  if (hash !== meta.hash) throw new SafetensorsError(`weights delta: version ${meta.version} hashes to ${hash.slice(0, 12)}, the delta says ${meta.hash.slice(0, 12)}`);
  return { held: { version: meta.version, hash, params: held.params }, changed };
}
