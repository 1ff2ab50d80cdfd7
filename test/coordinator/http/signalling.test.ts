/**
 * The PeerJS signalling server on the coordinator's own HTTP server
 * (coordinator/http/signalling.ts), driven with a WebSocket client: a
 * registered member takes its own worker id only; a foreign id, a bad token,
 * a non-member, a taken id are refused; messages are relayed with the
 * sender's id as src; malformed ones are answered ERROR and relay nothing.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { afterAll, beforeAll, expect, test } from 'vitest';
import WebSocket from 'ws';
import { P2P_PATHS, PEERJS_KEY, WORKER_HEADER, type RegisterResponse } from '../../../core/protocol/index.ts';
import { attachSignalling, type Signalling } from '../../../coordinator/http/signalling.ts';
import { makeRig, type Rig } from '../harness.ts';

let rig: Rig;
let server: Server;
let sig: Signalling;
let base = '';

beforeAll(async () => {
  rig = await makeRig();
  server = await new Promise<Server>((res) => {
    const s = serve({ fetch: rig.app.fetch, hostname: '127.0.0.1', port: 0 }, () => res(s as Server));
  });
  sig = attachSignalling(server, rig.coord);
  base = `ws://127.0.0.1:${(server.address() as AddressInfo).port}${P2P_PATHS.peerjs}/peerjs`;
});

afterAll(async () => {
  sig.close();
  (server as { closeAllConnections?: () => void }).closeAllConnections?.();
  await new Promise<void>((r) => server.close(() => r()));
  await rig.close();
});

async function member(name: string, join = true): Promise<RegisterResponse> {
  const r = (await (await rig.fetch('/api/v1/workers', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, runtime: 'browser', backend: 'cpu', adapter: '' }) })).json()) as RegisterResponse;
  if (join) expect((await rig.fetch(P2P_PATHS.join, { method: 'POST', headers: { 'content-type': 'application/json', [WORKER_HEADER]: r.token }, body: '{"webrtc":true}' })).status).toBe(200);
  return r;
}

/** Opens a socket; resolves with it and its message queue once the first message came (or it closed). */
async function connect(id: string, token: string, key = PEERJS_KEY): Promise<{ ws: WebSocket; msgs: Record<string, unknown>[]; closed: Promise<void> }> {
  const ws = new WebSocket(`${base}?key=${key}&id=${encodeURIComponent(id)}&token=${token}&version=1.5.5`);
  const msgs: Record<string, unknown>[] = [];
  const closed = new Promise<void>((r) => ws.on('close', () => r()));
  await new Promise<void>((r) => {
    ws.on('message', (d) => {
      msgs.push(JSON.parse(d.toString()) as Record<string, unknown>);
      r();
    });
    ws.on('close', () => r());
  });
  return { ws, msgs, closed };
}

const next = async (msgs: unknown[], n: number): Promise<void> => {
  const t0 = Date.now();
  while (msgs.length < n) {
    if (Date.now() - t0 > 3_000) throw new Error(`waited for message ${n}, have ${JSON.stringify(msgs)}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

test('a member takes its own id and gets OPEN; offers are relayed with the true src', async () => {
  const a = await member('a');
  const b = await member('b');
  const ca = await connect(a.workerId, a.token);
  const cb = await connect(b.workerId, b.token);
  expect(ca.msgs[0]).toEqual({ type: 'OPEN' });
  expect(cb.msgs[0]).toEqual({ type: 'OPEN' });
  ca.ws.send(JSON.stringify({ type: 'OFFER', src: 'someone-else', dst: b.workerId, payload: { sdp: 'x' } }));
  await next(cb.msgs, 2);
  expect(cb.msgs[1]).toEqual({ type: 'OFFER', src: a.workerId, dst: b.workerId, payload: { sdp: 'x' } });
  // to a peer that is not connected: EXPIRE
  ca.ws.send(JSON.stringify({ type: 'CANDIDATE', dst: 'w-00000000', payload: {} }));
  await next(ca.msgs, 2);
  expect(ca.msgs[1]).toMatchObject({ type: 'EXPIRE', src: 'w-00000000' });
  expect(sig.peers().sort()).toEqual([a.workerId, b.workerId].sort());
  ca.ws.close();
  cb.ws.close();
  await Promise.all([ca.closed, cb.closed]);
});

test('a foreign id, a bad token, a wrong key, a non-member and a taken id are refused', async () => {
  const a = await member('a2');
  const b = await member('b2');
  const outsider = await member('c2', false);
  const cases: [string, string, string, RegExp][] = [
    [b.workerId, a.token, PEERJS_KEY, /not this worker's/],
    [a.workerId, 'not-a-token', PEERJS_KEY, /unauthorized/],
    [a.workerId, a.token, 'peerjs', /key must be/],
    [outsider.workerId, outsider.token, PEERJS_KEY, /has not joined/],
  ];
  for (const [id, token, key, re] of cases) {
    const c = await connect(id, token, key);
    await c.closed;
    expect(JSON.stringify(c.msgs[0])).toMatch(re);
  }
  const first = await connect(a.workerId, a.token);
  const second = await connect(a.workerId, a.token);
  await second.closed;
  expect(second.msgs[0]).toMatchObject({ type: 'ID-TAKEN' });
  expect(sig.peers()).toContain(a.workerId); // the first keeps its id
  first.ws.close();
  await first.closed;
});

test('malformed messages are answered ERROR and relay nothing; too many close the socket', async () => {
  const a = await member('a3');
  const b = await member('b3');
  const ca = await connect(a.workerId, a.token);
  const cb = await connect(b.workerId, b.token);
  const bad = ['not json', '[]', JSON.stringify({ type: 'HACK', dst: b.workerId }), JSON.stringify({ type: 'OFFER', dst: '../x' }), JSON.stringify({ type: 'OFFER', dst: a.workerId })];
  for (const m of bad) ca.ws.send(m);
  await next(ca.msgs, 1 + bad.length);
  expect(ca.msgs.slice(1).every((m) => m.type === 'ERROR')).toBe(true);
  await new Promise((r) => setTimeout(r, 100));
  expect(cb.msgs.length).toBe(1); // only its OPEN
  for (let i = 0; i < 6; i++) ca.ws.send('garbage');
  await ca.closed;
  // an oversized message closes the socket too (ws's maxPayload)
  const big = await connect(b.workerId + '', b.token).catch(() => null);
  expect(big?.msgs[0]).toMatchObject({ type: 'ID-TAKEN' });
  cb.ws.send('x'.repeat(70 * 1024));
  await cb.closed;
});
