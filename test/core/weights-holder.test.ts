import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseJobConfig } from '../../core/model/config.ts';
import { initParams, tensorShapes } from '../../core/model/params.ts';
import { blobHash } from '../../core/protocol/index.ts';
import { WeightsChain, type PublishedVersion } from '../../core/protocol/weights-delta.ts';
import { WeightsHolder, type WeightsOffer } from '../../client/worker/weights-holder.ts';

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const cfg = parseJobConfig({ layers: [784, 30, 10], seed: 2 });
const shapes = tensorShapes(cfg);

/** A coordinator's chain of `n` versions, each moving rbm0.W and out.b a little; every blob by hash. */
async function chainOf(n: number): Promise<{ versions: PublishedVersion[]; blobs: Map<string, Uint8Array> }> {
  const master = initParams(cfg);
  const { chain, first } = WeightsChain.start(cfg, shapes, 'j', 'int8', 64, sha256, master, 0);
  const versions = [first];
  const blobs = new Map<string, Uint8Array>([[first.hash, first.blob.slice()]]);
  for (let v = 1; v < n; v++) {
    for (const name of ['rbm0.W', 'out.b']) {
      const t = master.get(name)!;
      for (let i = 0; i < t.length; i++) t[i] = t[i]! + 0.001 * Math.sin(v * 7 + i);
    }
    const pub = chain.next(master, ['rbm0.W', 'out.b'], v, false);
    versions.push(pub);
    blobs.set(pub.hash, pub.blob.slice());
    blobs.set(await blobHash(pub.delta!), pub.delta!);
  }
  return { versions, blobs };
}

/** The lease's offer at version v: whole weights, and the deltas of up to `history` versions before it. */
async function offer(versions: PublishedVersion[], v: number, history = 1): Promise<WeightsOffer> {
  const p = versions[v]!;
  const deltas = [];
  for (let u = Math.max(1, v - history + 1); u <= v; u++) deltas.push({ hash: await blobHash(versions[u]!.delta!), bytes: versions[u]!.delta!.length, from: u - 1, fromHash: versions[u - 1]!.hash });
  return { jobId: 'j', weights: { hash: p.hash, bytes: p.blob.length, version: v }, deltas };
}

describe('worker weights holder', () => {
  it('joins with whole weights, then follows by deltas; a worker too far behind gets whole weights; what it holds hashes right', async () => {
    const { versions, blobs } = await chainOf(8);
    const fetched: string[] = [];
    const holder = new WeightsHolder(async (hash, kind) => {
      fetched.push(kind);
      return blobs.get(hash)!;
    });
    await holder.get(cfg, shapes, await offer(versions, 2)); // joins mid-job
    expect(fetched).toEqual(['weights']);
    await holder.get(cfg, shapes, await offer(versions, 3));
    await holder.get(cfg, shapes, await offer(versions, 3)); // held: nothing fetched
    expect(fetched).toEqual(['weights', 'delta']);
    expect(holder.hash).toBe(versions[3]!.hash);
    await holder.get(cfg, shapes, await offer(versions, 5)); // version 3 is too old for the delta 4 -> 5
    expect(fetched).toEqual(['weights', 'delta', 'weights']);
    expect(holder.version).toBe(5);
    expect(holder.stats).toEqual({ wholeDownloads: 2, deltasApplied: 1, deltasRefused: 0 });
    // two versions behind, with the lease's deltas reaching back: both applied, no whole download
    await holder.get(cfg, shapes, await offer(versions, 7, 3));
    expect(fetched).toEqual(['weights', 'delta', 'weights', 'delta', 'delta']);
    expect(holder.hash).toBe(versions[7]!.hash);
    // the held weights as a whole blob again: the coordinator's bytes of that version
    expect(Buffer.from(holder.blob(versions[7]!.hash)!).equals(Buffer.from(versions[7]!.blob))).toBe(true);
    expect(holder.blob(versions[6]!.hash)).toBeUndefined();
  });

  it('takes whole weights when the deltas it would need weigh more than the whole blob', async () => {
    const { versions, blobs } = await chainOf(20);
    const fetched: string[] = [];
    const holder = new WeightsHolder(async (hash, kind) => {
      fetched.push(kind);
      return blobs.get(hash)!;
    });
    await holder.get(cfg, shapes, await offer(versions, 1));
    // int8 deltas of rbm0.W and out.b are about a quarter of the whole blob: 5 of them cost more
    await holder.get(cfg, shapes, await offer(versions, 6, 8));
    expect(fetched).toEqual(['weights', 'weights']);
    await holder.get(cfg, shapes, await offer(versions, 8, 8));
    expect(fetched).toEqual(['weights', 'weights', 'delta', 'delta']);
  });

  it('a delta that does not give the lease\'s weights (damaged held copy) is dropped for whole weights', async () => {
    const { versions, blobs } = await chainOf(3);
    const holder = new WeightsHolder(async (hash) => blobs.get(hash)!);
    const p1 = await holder.get(cfg, shapes, await offer(versions, 1));
    p1.get('rbm0.W')![0] = 42; // a bit flip in memory
    const p2 = await holder.get(cfg, shapes, await offer(versions, 2));
    expect(holder.stats).toMatchObject({ deltasRefused: 1, wholeDownloads: 2 });
    expect(holder.hash).toBe(versions[2]!.hash);
    expect(p2.get('rbm0.W')![0]).not.toBe(42);
  });
});
