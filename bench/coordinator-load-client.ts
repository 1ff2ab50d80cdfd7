/**
 * One process of simulated workers for bench/coordinator-load.ts: K workers
 * that register, lease (no long-poll: the round trip is the service time)
 * and upload a precomputed result of the right shapes, no compute. The 6.7 MB
 * of gradient data is built once and shared; each upload is a Blob of a
 * fresh safetensors header (its lease's ids) and that shared data.
 *
 *   node --import tsx bench/coordinator-load-client.ts URL K SECONDS
 * Prints one JSON line: {leases, results, errors, latencies: number[] (ms)}.
 */
import { phaseTensors, tensorShapes } from '../core/model/params.ts';
import { PATHS, RESULT_FORMAT, PROTOCOL_VERSION, WORKER_HEADER, type LeaseResponse, type RegisterResponse, type TaskLease } from '../core/protocol/index.ts';

const [url, kArg, secondsArg] = process.argv.slice(2);
const K = Number(kArg);
const until = Date.now() + Number(secondsArg) * 1000;

let shared: { data: Uint8Array; entries: [string, number[], number, number][] } | null = null;

/** The gradient data once (small random values), and each tensor's offsets. */
function sharedData(lease: TaskLease): NonNullable<typeof shared> {
  if (shared) return shared;
  const shapes = tensorShapes(lease.config);
  const entries: [string, number[], number, number][] = [];
  let off = 0;
  for (const name of phaseTensors(lease.config, lease.phase)) {
    const shape = shapes.get(name)!;
    const n = shape.reduce((a, b) => a * b, 1) * 4;
    entries.push([name, shape, off, off + n]);
    off += n;
  }
  const f = new Float32Array(off / 4);
  for (let i = 0; i < f.length; i++) f[i] = ((i * 2654435761) % 1000) / 1e6;
  shared = { data: new Uint8Array(f.buffer), entries };
  return shared;
}

function body(lease: TaskLease): Blob {
  const s = sharedData(lease);
  const header: Record<string, unknown> = {
    __metadata__: {
      format: RESULT_FORMAT,
      protocol: String(PROTOCOL_VERSION),
      taskId: lease.taskId,
      leaseId: lease.leaseId,
      weightsVersion: String(lease.weights.version),
      count: String(lease.sample.count),
      loss: '1',
      correct: '0',
    },
  };
  for (const [name, shape, a, b] of s.entries) header[name] = { dtype: 'F32', shape, data_offsets: [a, b] };
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const head = new Uint8Array(8 + Buffer.byteLength(json));
  new DataView(head.buffer).setUint32(0, head.length - 8, true);
  head.set(new TextEncoder().encode(json), 8);
  return new Blob([head, s.data as Uint8Array<ArrayBuffer>]);
}

const stats = { leases: 0, results: 0, errors: 0, errorSamples: [] as string[], latencies: [] as number[] };

async function simulated(i: number): Promise<void> {
  const reg = (await (await fetch(url + PATHS.register, { method: 'POST', body: JSON.stringify({ name: `sim-${process.pid}-${i}`, runtime: 'node', backend: 'cpu', adapter: 'simulated' }) })).json()) as RegisterResponse;
  const headers = { [WORKER_HEADER]: reg.token, 'content-type': 'application/json' };
  let idle = 5;
  while (Date.now() < until) {
    try {
      if (await once(reg.token, headers)) idle = 5;
      else {
        await new Promise((ok) => setTimeout(ok, idle));
        idle = Math.min(100, idle * 2);
      }
    } catch (e) {
      stats.errors++;
      if (stats.errorSamples.length < 5) stats.errorSamples.push(`network: ${(e as Error).message} ${String((e as { cause?: unknown }).cause ?? '')}`);
      await new Promise((ok) => setTimeout(ok, 50));
    }
  }
}

/** One lease and (when there is a task) one upload; false when no task was free. */
async function once(token: string, headers: Record<string, string>): Promise<boolean> {
  {
    const t0 = performance.now();
    const res = await fetch(url + PATHS.lease, { method: 'POST', headers, body: '{"waitMs":0}' });
    const r = (await res.json()) as LeaseResponse;
    if (!res.ok) {
      stats.errors++;
      if (stats.errorSamples.length < 5) stats.errorSamples.push(JSON.stringify(r));
      return false;
    }
    if (!r.lease) return false;
    stats.latencies.push(performance.now() - t0);
    stats.leases++;
    const up = await fetch(url + PATHS.result(r.lease.leaseId), { method: 'PUT', headers: { [WORKER_HEADER]: token, 'content-type': 'application/vnd.safetensors' }, body: body(r.lease) });
    const text = await up.text();
    if (up.ok) stats.results++;
    else if (up.status !== 410) {
      stats.errors++;
      if (stats.errorSamples.length < 5) stats.errorSamples.push(`${up.status} ${text.slice(0, 200)}`);
    }
    return true;
  }
}

await Promise.all(Array.from({ length: K }, (_, i) => simulated(i)));
process.stdout.write(JSON.stringify(stats) + '\n');
