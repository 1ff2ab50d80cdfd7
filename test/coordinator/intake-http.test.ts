/**
 * Result intake over a real socket (@hono/node-server), where the body is
 * read from Node's IncomingMessage: a valid upload lands; a chunked body over
 * the limit and a body that stalls are refused with their status (not a
 * reset connection), and the intake slot is free again afterwards.
 */
import { serve, type ServerType } from '@hono/node-server';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseJobConfig } from '../../core/model/config.ts';
import { tensorShapes, phaseTensors } from '../../core/model/params.ts';
import { encodeResult, PATHS, WORKER_HEADER, type RegisterResponse, type TaskLease } from '../../core/protocol/index.ts';
import { inProcessWorker, makeRig, SMALL_JOB, startJob, type Rig } from './harness.ts';

/** Sends raw HTTP/1.1 and returns what the server answers before it closes the connection. */
function rawExchange(port: number, head: string, chunks: Buffer[], holdMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    let got = '';
    sock.on('data', (d) => (got += d.toString('latin1')));
    sock.on('error', reject);
    sock.on('close', () => resolve(got));
    sock.on('connect', async () => {
      sock.write(head);
      for (const ch of chunks) {
        if (sock.destroyed) break;
        sock.write(`${ch.length.toString(16)}\r\n`);
        sock.write(ch);
        sock.write('\r\n');
        await new Promise((r) => setImmediate(r));
      }
      // then nothing more: the server must answer and close on its own
      setTimeout(() => sock.destroy(), holdMs);
    });
  });
}

/** The rig's app on a real socket; a worker registered over it, with one lease. */
async function overHttp(r: Rig, name: string): Promise<{ server: ServerType; port: number; base: string; w: RegisterResponse; l: TaskLease }> {
  const server = await new Promise<ServerType>((ok) => {
    const s = serve({ fetch: r.app.fetch, port: 0, hostname: '127.0.0.1' }, () => ok(s));
  });
  const port = (server.address() as AddressInfo).port;
  const base = `http://127.0.0.1:${port}`;
  const w = (await (await fetch(base + PATHS.register, { method: 'POST', body: JSON.stringify({ name, runtime: 'node', backend: 'cpu', adapter: '' }) })).json()) as RegisterResponse;
  const l = ((await (await fetch(base + PATHS.lease, { method: 'POST', headers: { [WORKER_HEADER]: w.token }, body: '{"waitMs":0}' })).json()) as { lease: TaskLease }).lease;
  return { server, port, base, w, l };
}

describe('result intake over HTTP', () => {
  it('reads the body from the socket, refuses oversized and stalled bodies with 413 / 408, and keeps serving', async () => {
    const r = await makeRig({ uploadTimeoutMs: 300, maxConcurrentUploads: 1 });
    let server: ServerType | undefined;
    try {
      await startJob(r, SMALL_JOB);
      const h = await overHttp(r, 'sock');
      server = h.server;
      const { port, base, w, l } = h;
      const head = `PUT ${PATHS.result(l.leaseId)} HTTP/1.1\r\nHost: 127.0.0.1\r\n${WORKER_HEADER}: ${w.token}\r\nTransfer-Encoding: chunked\r\n\r\n`;

      // Chunked (no declared length), past the limit: 413, then the server closes.
      const limit = r.coord.maxResultBytes;
      const chunk = Buffer.alloc(1 << 20);
      const big = await rawExchange(port, head, Array.from({ length: Math.ceil(limit / chunk.length) + 2 }, () => chunk), 10_000);
      expect(big.split('\r\n')[0]).toBe('HTTP/1.1 413 Payload Too Large');
      expect(big).toContain('"error":"body-too-large"');
      expect(big.toLowerCase()).toContain('connection: close');

      // A body that stalls: 408 after uploadTimeoutMs, then the server closes.
      const t0 = Date.now();
      const slow = await rawExchange(port, head, [Buffer.alloc(16)], 10_000);
      expect(slow.split('\r\n')[0]).toBe('HTTP/1.1 408 Request Timeout');
      expect(slow).toContain('"error":"upload-timeout"');
      expect(Date.now() - t0).toBeLessThan(5_000);

      // Nothing was taken in; the one intake slot is free: a valid upload lands.
      expect(r.coord.perf.results).toBe(0);
      const shapes = tensorShapes(l.config);
      const grads = new Map(phaseTensors(l.config, l.phase).map((n) => [n, new Float32Array(shapes.get(n)!.reduce((x, y) => x * y, 1)).fill(1e-3)]));
      const body = encodeResult({ taskId: l.taskId, leaseId: l.leaseId, weightsVersion: l.weights.version, count: l.sample.count, loss: 1, correct: 0 }, grads, shapes);
      const ok = await fetch(base + PATHS.result(l.leaseId), { method: 'PUT', headers: { [WORKER_HEADER]: w.token, 'content-type': 'application/vnd.safetensors' }, body: body as Uint8Array<ArrayBuffer> });
      expect(ok.status).toBe(200);
      expect(((await ok.json()) as { accepted: boolean }).accepted).toBe(true);
      expect(r.coord.perf.results).toBe(1);
      expect(r.coord.perf.slotBodies).toBe(1); // read straight into the aggregator's memory
    } finally {
      await new Promise((ok) => (server ? server.close(ok) : ok(undefined)));
      await r.close();
    }
  });

  it('reuses the buffers of old weights, but never one a response is still sending', async () => {
    // 6.3 MB of weights: more than the socket buffers hold, so a reader that
    // stops leaves most of its response waiting in the coordinator.
    const job = parseJobConfig({ name: 'wide', layers: [784, 2000, 10], trainLimit: 600, testLimit: 100, partitions: 1, seed: 3, pretrain: { epochs: 0 }, finetune: { epochs: 1, batchSize: 100 } });
    const r = await makeRig();
    let server: ServerType | undefined;
    try {
      const id = await startJob(r, job);
      const h = await overHttp(r, 'probe');
      server = h.server;
      const { port, base, w: probe, l } = h;
      await fetch(base + PATHS.returnLease(l.leaseId), { method: 'POST', headers: { [WORKER_HEADER]: probe.token } });
      const hash0 = l.weights.hash;
      // A client asks for version 0 and stops reading after the first bytes.
      const sock = connect(port, '127.0.0.1');
      const got: Buffer[] = [];
      const firstBytes = new Promise<void>((ok) => sock.once('data', () => ok()));
      sock.on('data', (d) => {
        got.push(d);
        sock.pause();
      });
      sock.write(`GET ${PATHS.blob(hash0)} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
      await firstBytes;
      // A worker trains the job through the same server: every later version is published, served, retired.
      const w = await inProcessWorker(r, 'trainer', { coordinator: base, fetch: (input, init) => fetch(input, init) });
      await w.start();
      await r.coord.idle();
      expect(r.coord.summary(id).state).toBe('done');
      expect(r.coord.perf.weightsReused).toBeGreaterThan(0);
      // The stalled client now reads the rest: exactly version 0's bytes.
      const ended = new Promise<void>((ok) => sock.on('end', () => ok()));
      sock.on('data', () => sock.resume());
      sock.resume();
      await ended;
      const raw = Buffer.concat(got);
      const split = raw.indexOf('\r\n\r\n');
      expect(raw.subarray(0, split).toString('latin1').split('\r\n')[0]).toBe('HTTP/1.1 200 OK');
      const body = raw.subarray(split + 4);
      expect(body.length).toBeGreaterThan(6_000_000);
      expect(createHash('sha256').update(body).digest('hex')).toBe(hash0);
    } finally {
      await new Promise((ok) => (server ? server.close(ok) : ok(undefined)));
      await r.close();
    }
  });
});
