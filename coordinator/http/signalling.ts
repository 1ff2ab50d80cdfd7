/**
 * Signalling for WebRTC between tabs: the PeerJS server protocol, served by
 * the coordinator itself on its own HTTP server (WebSocket upgrades of
 * P2P_PATHS.peerjs + "/peerjs"), through the `ws` package.
 *
 * Why this and not the `peer` package: `peer` brings Express and its own
 * HTTP stack and has no hook that refuses an id before it is taken; here a
 * peer id is a worker id, and only the worker that holds its token (and has
 * joined peer-to-peer rounds) may take it. (@hono/node-ws would do the same
 * upgrade but wants @hono/node-server 1.x; this app runs 2.x.)
 *
 * Protocol (peerjs 1.5's client): the socket opens at
 * `?key=tessera&id=<workerId>&token=<worker token>&version=...`; the
 * server answers `{type: "OPEN"}` or an `ERROR` / `ID-TAKEN` and closes.
 * The client sends HEARTBEAT and OFFER / ANSWER / CANDIDATE / LEAVE with
 * `dst`; the server relays them to dst with `src` set to the sender (never
 * what the sender wrote), or answers EXPIRE when dst is not connected. A
 * malformed message (not JSON, too large, an unknown type, a bad dst) is
 * answered with ERROR and changes nothing; the tenth closes the socket.
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { P2P_PATHS, PEERJS_KEY } from '../../core/protocol/index.ts';
import type { Coordinator } from '../engine/coordinator.ts';
import { DomainError } from '../engine/errors.ts';

/** Largest signalling message (an SDP offer is a few KB). */
export const MAX_SIGNAL_BYTES = 64 * 1024;
const RELAYED = new Set(['OFFER', 'ANSWER', 'CANDIDATE', 'LEAVE', 'EXPIRE']);
const ID = /^[0-9a-zA-Z_-]{1,64}$/;
const MAX_BAD = 10;

export interface Signalling {
  /** peer ids connected now */
  readonly peers: () => string[];
  close(): void;
}

/** Serves the PeerJS signalling protocol on `server`'s upgrades to P2P_PATHS.peerjs. */
export function attachSignalling(server: Server, coord: Pick<Coordinator, 'authenticate' | 'p2pMember'>): Signalling {
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_SIGNAL_BYTES });
  const sockets = new Map<string, WebSocket>();
  const path = `${P2P_PATHS.peerjs}/peerjs`;

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const url = new URL(req.url ?? '/', 'http://local');
    if (url.pathname !== path) return; // not ours: another handler (or none) answers
    wss.handleUpgrade(req, socket, head, (ws) => accept(ws, url.searchParams));
  };
  server.on('upgrade', onUpgrade);

  const send = (ws: WebSocket, msg: unknown): void => {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(msg));
  };
  const refuse = (ws: WebSocket, type: 'ERROR' | 'ID-TAKEN' | 'INVALID-KEY', msg: string): void => {
    send(ws, { type, payload: { msg } });
    ws.close(1008, type);
  };

  function accept(ws: WebSocket, q: URLSearchParams): void {
    const id = q.get('id') ?? '';
    if (q.get('key') !== PEERJS_KEY) return refuse(ws, 'INVALID-KEY', `key must be "${PEERJS_KEY}"`);
    let workerId: string;
    try {
      workerId = coord.authenticate(q.get('token') ?? undefined).id;
      if (!coord.p2pMember({ id: workerId })) return refuse(ws, 'ERROR', `worker ${workerId} has not joined peer-to-peer rounds (POST ${P2P_PATHS.join})`);
    } catch (e) {
      return refuse(ws, 'ERROR', e instanceof DomainError ? `${e.code}: ${e.detail}` : 'authentication failed');
    }
    if (id !== workerId) return refuse(ws, 'ERROR', `peer id ${JSON.stringify(id.slice(0, 80))} is not this worker's: a worker takes its own id (${workerId}) only`);
    if (sockets.has(id)) return refuse(ws, 'ID-TAKEN', `peer id ${id} is connected already`);
    sockets.set(id, ws);
    send(ws, { type: 'OPEN' });
    let bad = 0;
    const malformed = (msg: string): void => {
      send(ws, { type: 'ERROR', payload: { msg } });
      if (++bad >= MAX_BAD) ws.close(1008, 'too many malformed messages');
    };
    ws.on('message', (data: RawData, binary: boolean) => {
      if (binary) return malformed('signalling messages are JSON text');
      let m: { type?: unknown; dst?: unknown; payload?: unknown };
      try {
        m = JSON.parse(data.toString()) as typeof m;
      } catch {
        return malformed('not JSON');
      }
      if (typeof m !== 'object' || m === null || typeof m.type !== 'string') return malformed('expected {type, dst, payload}');
      if (m.type === 'HEARTBEAT') return;
      if (!RELAYED.has(m.type)) return malformed(`unknown message type ${JSON.stringify(m.type.slice(0, 40))}`);
      if (typeof m.dst !== 'string' || !ID.test(m.dst)) return malformed('"dst" must be a peer id');
      if (m.dst === id) return malformed('"dst" is the sender itself');
      const to = sockets.get(m.dst);
      if (!to) {
        if (m.type !== 'LEAVE' && m.type !== 'EXPIRE') send(ws, { type: 'EXPIRE', src: m.dst, dst: id });
        return;
      }
      send(to, { type: m.type, src: id, dst: m.dst, payload: m.payload });
    });
    ws.on('error', () => ws.close());
    ws.on('close', () => {
      if (sockets.get(id) === ws) sockets.delete(id);
    });
  }

  return {
    peers: () => [...sockets.keys()],
    close() {
      server.off('upgrade', onUpgrade);
      for (const ws of sockets.values()) ws.terminate();
      sockets.clear();
      wss.close();
    },
  };
}
