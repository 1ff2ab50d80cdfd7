/**
 * Peer-to-peer routes: a tab joins trees, long-polls for its role in one, and
 * (a leaf) reports the sketch of its result before it hands the result to
 * its parent. The partial a node uploads takes the result route with
 * TREE_HEADER (workers.ts). Signalling (the PeerJS protocol over WebSocket)
 * is in ../signalling.ts, on the same server.
 */
import type { Hono, MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import * as v from 'valibot';
import { MAX_SKETCH_REPORT_BYTES, P2P_PATHS, type JoinRequest, type RoundRequest } from '../../../core/protocol/index.ts';
import { finite, hashList, realIn, record } from '../../../core/schemas.ts';
import type { Coordinator } from '../../engine/coordinator.ts';
import { readJson, tooLarge } from '../body.ts';
import type { Env } from '../env.ts';
import type { RateLimiter } from '../middleware/rate-limit.ts';
import { workerAuth } from '../middleware/worker-auth.ts';

/** POST /p2p/join. */
export const JoinBody = record({
  webrtc: v.boolean('expected true or false'),
  bandwidthMbps: v.optional(realIn(0, 1e6)),
});

/** POST /p2p/round. */
export const RoundBody = record({
  cached: v.optional(hashList()),
  waitMs: v.fallback(finite, 0),
});

// The schemas' outputs are what core/protocol/p2p.ts says the coordinator receives.
type Satisfies<T extends U, U> = T;
export type JoinBodyOut = Satisfies<v.InferOutput<typeof JoinBody>, JoinRequest>;
export type RoundBodyOut = Satisfies<v.InferOutput<typeof RoundBody>, RoundRequest>;

export interface PeerRouteOptions {
  readonly limiter: RateLimiter;
  readonly smallBody: MiddlewareHandler;
}

export function peerRoutes(app: Hono<Env>, coord: Coordinator, opts: PeerRouteOptions): void {
  const counted = workerAuth({ coordinator: coord, limiter: opts.limiter });
  const uncounted = workerAuth({ coordinator: coord });
  app.post(P2P_PATHS.join, opts.smallBody, counted, async (c) => c.json(coord.p2pJoin(c.get('worker'), await readJson(c, JoinBody))));
  app.post(P2P_PATHS.round, opts.smallBody, counted, async (c) => {
    const b = await readJson(c, RoundBody);
    return c.json(await coord.p2pRound(c.get('worker'), b.cached, b.waitMs));
  });
  // one report per leaf result, bounded by its leases like a result upload: not counted
  const reportLimit = bodyLimit({ maxSize: MAX_SKETCH_REPORT_BYTES, onError: tooLarge(MAX_SKETCH_REPORT_BYTES) });
  app.post(P2P_PATHS.sketch, reportLimit, uncounted, async (c) => {
    coord.p2pReport(c.get('worker'), new Uint8Array(await c.req.arrayBuffer()));
    return c.json({ ok: true });
  });
}
