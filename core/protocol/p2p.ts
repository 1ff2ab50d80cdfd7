/**
 * Peer-to-peer aggregation among browser tabs, on the wire: the paths, the
 * header that marks a partial sum's upload, a tab's announcement, its role
 * in an iteration's tree (with its leases), and the frames of the data
 * channel between a child and its parent. The count-sketch and the leaf's
 * report are in sketch.ts; the planner and the partial check in
 * coordinator/engine/p2p-plan.ts; coordinator/API.md documents all of it.
 */
import { API_PREFIX } from './paths.ts';
import type { TaskLease } from './messages.ts';

export const P2P_PATHS = {
  /** POST JoinRequest -> JoinResponse (worker header): the tab takes part in trees */
  join: `${API_PREFIX}/p2p/join`,
  /** POST RoundRequest -> RoundResponse (worker header); long-polls like POST /leases */
  round: `${API_PREFIX}/p2p/round`,
  /** POST a sketch report (sketch.ts, binary) -> {ok: true} (worker header) */
  sketch: `${API_PREFIX}/p2p/sketch`,
  /** the PeerJS signalling server (WebSocket; `?key=tessera&id=<workerId>&token=<worker token>`) */
  peerjs: `${API_PREFIX}/peerjs`,
} as const;

/** PeerJS `key` of the coordinator's signalling server. */
export const PEERJS_KEY = 'tessera';

/** Marks a result upload as the partial sum of a tree: the tree's id. */
export const TREE_HEADER = 'x-tessera-tree';

export interface JoinRequest {
  /** RTCPeerConnection works here */
  readonly webrtc: boolean;
  /** measured upload bandwidth, Mbit/s (the root is the tab with the most) */
  readonly bandwidthMbps?: number;
}

export interface JoinResponse {
  readonly ok: true;
  /** RTCConfiguration.iceServers, as the coordinator was configured (STUN/TURN) */
  readonly iceServers: readonly IceServer[];
  readonly peerjsPath: string;
  readonly peerjsKey: string;
}

export interface IceServer {
  readonly urls: string | readonly string[];
  readonly username?: string;
  readonly credential?: string;
}

export interface RoundRequest {
  readonly cached?: readonly string[];
  readonly waitMs?: number;
}

/** A tab's part in one tree of one iteration. */
export interface TreeRole {
  readonly treeId: string;
  readonly iteration: number;
  /** peer id (worker id) of the parent; null: the root, which uploads */
  readonly parent: string | null;
  /** peer ids of the children whose partials this tab adds and forwards */
  readonly children: readonly string[];
  /** this tab's own tasks: computed, summed, and uploaded directly (a node with children) or handed up (a leaf) */
  readonly leases: readonly TaskLease[];
  /** leaves only: the tree's check seed (sketch.ts) and the leaf's own seed; null for nodes that forward */
  readonly seeds: { readonly check: string; readonly own: string } | null;
  readonly buckets: number;
  /** a node with children waits this long (ms from the role) for them, then forwards what came */
  readonly collectMs: number;
}

export type RoundResponse = { readonly role: TreeRole } | { readonly role: null; readonly reason: 'no-job' | 'paused' | 'waiting' | 'done'; readonly retryAfterMs: number };

/**
 * Frames on the data channel, child to parent: `start` (JSON: treeId, the
 * leases the partial covers, bytes), then the partial's result body
 * (encodeResult, its leaseId and bundle the covered leases) in binary chunks
 * of at most the channel's maxMessageSize, then `end`; or `empty` (the
 * subtree has nothing: it fell back or failed). Parent to child: `ack` (taken
 * into the sum) or `late` (the parent already forwarded: upload directly).
 */
export type ChannelFrame =
  | { readonly t: 'start'; readonly treeId: string; readonly covers: readonly string[]; readonly bytes: number }
  | { readonly t: 'end'; readonly treeId: string }
  | { readonly t: 'empty'; readonly treeId: string }
  | { readonly t: 'ack'; readonly treeId: string }
  | { readonly t: 'late'; readonly treeId: string; readonly why: string };
