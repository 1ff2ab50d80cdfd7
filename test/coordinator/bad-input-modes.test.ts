/**
 * Bad uploads of the training modes' body formats (encoded-results.ts),
 * through app.request(): a local-SGD job with int8 results. Each refusal has
 * its status and error code, and the training state (job, ledger, weights,
 * published weights) is unchanged afterwards; then a valid body is accepted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodedEntries, SCALE_SUFFIX } from '../../core/protocol/encoded-tensors.ts';
import { encodeTrainingResult, resultSeed } from '../../core/protocol/encoded-results.ts';
import { parseJobConfig } from '../../core/model/config.ts';
import { phaseTensors, tensorShapes } from '../../core/model/params.ts';
import type { TrainingConfig } from '../../core/model/training.ts';
import { encodeResult, PATHS, WORKER_HEADER, type LeaseResponse, type RegisterResponse, type TaskLease } from '../../core/protocol/index.ts';
import { encodeSafetensors, type TensorData } from '../../core/safetensors.ts';
import { makeRig, SMALL_JOB, startJob, type Rig } from './harness.ts';

const JOB = parseJobConfig({ ...SMALL_JOB, name: 'bad-modes', training: { mode: 'local-sgd', localSteps: 2, up: 'int8', down: 'int8', blockSize: 64 } });
const T = JOB.training!;

let rig: Rig;
let jobId: string;
let a: RegisterResponse;
let lease: TaskLease;

function deltas(fill = 1e-3): Map<string, Float32Array> {
  const shapes = tensorShapes(JOB);
  return new Map(phaseTensors(JOB, lease.phase).map((n, k) => [n, Float32Array.from({ length: shapes.get(n)!.reduce((x, y) => x * y, 1) }, (_, i) => fill * Math.sin(i + k))]));
}

type Entries = [string, { shape: readonly number[]; data: TensorData }][];

/** A body in the job's format, its tensors and metadata open to tampering. */
function body(over: { meta?: Record<string, string | undefined>; entries?: (e: Entries) => Entries; training?: TrainingConfig } = {}): Uint8Array {
  const t = over.training ?? T;
  let entries: Entries = encodedEntries(deltas(), tensorShapes(JOB), t.up, t.blockSize, resultSeed(JOB, lease.partition.index, lease.weights.version));
  if (over.entries) entries = over.entries(entries);
  const meta: Record<string, string | undefined> = {
    format: 'tessera-result', protocol: '1', taskId: lease.taskId, leaseId: lease.leaseId, weightsVersion: String(lease.weights.version),
    weightsHash: lease.weights.hash, count: String(lease.sample.count), loss: '1.5', correct: '0', mode: t.mode, encoding: t.up, blockSize: String(t.blockSize),
    ...over.meta,
  };
  for (const k of Object.keys(meta)) if (meta[k] === undefined) delete meta[k];
  return encodeSafetensors(entries, meta as Record<string, string>);
}

/** The entries with the scales of the first int8 tensor replaced. */
function scales(f: (s: Float32Array) => Float32Array): (e: Entries) => Entries {
  return (e) => {
    const i = e.findIndex(([n]) => n.endsWith(SCALE_SUFFIX));
    const out = [...e];
    const d = f((e[i]![1].data as Float32Array).slice());
    out[i] = [e[i]![0], { shape: [d.length], data: d }];
    return out;
  };
}

function put(body: Uint8Array): Promise<Response> {
  const headers: Record<string, string> = { 'content-type': 'application/vnd.safetensors', 'content-length': String(body.length), [WORKER_HEADER]: a.token };
  return Promise.resolve(rig.app.request(PATHS.result(lease.leaseId), { method: 'PUT', headers, body: body as Uint8Array<ArrayBuffer> }));
}

async function snapshot(): Promise<string> {
  const { rejectedResults: _r, lateResults: _l, ...job } = rig.coord.summary(jobId);
  const weights = new Uint8Array(await (await rig.admin(`/api/v1/admin/jobs/${jobId}/weights`)).arrayBuffer());
  const published = new Uint8Array(await (await rig.app.request(PATHS.blob(lease.weights.hash))).arrayBuffer());
  const h = (b: Uint8Array): number => {
    let x = 0;
    for (let i = 0; i < b.length; i++) x = (Math.imul(x, 31) + b[i]!) | 0;
    return x;
  };
  return JSON.stringify({ job, tasks: rig.coord.store.tasksOf(jobId), leases: rig.coord.store.leasesOf(jobId), weights: h(weights), published: h(published) });
}

beforeAll(async () => {
  rig = await makeRig({ normBoundPerExample: 100 });
  jobId = await startJob(rig, JOB);
  const res = await rig.app.request(PATHS.register, { method: 'POST', body: JSON.stringify({ name: 'a', runtime: 'node', backend: 'cpu', adapter: 'test' }) });
  a = (await res.json()) as RegisterResponse;
  const lr = (await (await rig.app.request(PATHS.lease, { method: 'POST', headers: { [WORKER_HEADER]: a.token }, body: JSON.stringify({ waitMs: 0 }) })).json()) as LeaseResponse;
  if (!lr.lease) throw new Error('no lease');
  lease = lr.lease;
  expect(lease.local).toEqual({ round: 0, trainCount: 600 });
  expect(lease.sample.count).toBeGreaterThan(0);
});

afterAll(async () => {
  await rig.close();
});

describe('bad uploads of the training modes are refused with no state change', () => {
  const nb = Math.ceil((784 * 24) / 64);
  const cases: [string, () => Uint8Array, number, string][] = [
    ['truncated body', () => body().subarray(0, 3000), 400, 'malformed-result'],
    ['truncated by one byte', () => { const b = body(); return b.subarray(0, b.length - 1); }, 400, 'malformed-result'],
    ['wrong block count (one scale short)', () => body({ entries: scales((s) => s.subarray(0, nb - 1)) }), 422, 'shape-mismatch'],
    ['wrong block count (one scale more)', () => body({ entries: scales((s) => Float32Array.from([...s, 1])) }), 422, 'shape-mismatch'],
    ['NaN scale', () => body({ entries: scales((s) => { s[7] = NaN; return s; }) }), 422, 'non-finite'],
    ['infinite scale', () => body({ entries: scales((s) => { s[0] = Infinity; return s; }) }), 422, 'non-finite'],
    ['zero scale', () => body({ entries: scales((s) => { s[3] = 0; return s; }) }), 422, 'bad-scale'],
    ['negative scale', () => body({ entries: scales((s) => { s[3] = -0.5; return s; }) }), 422, 'bad-scale'],
    ['int8 value -128', () => body({ entries: (e) => { const q = (e[0]![1].data as Int8Array).slice(); q[5] = -128; return [[e[0]![0], { shape: e[0]![1].shape, data: q }], ...e.slice(1)]; } }), 422, 'bad-scale'],
    ['scales missing', () => body({ entries: (e) => e.filter(([n]) => !n.endsWith(SCALE_SUFFIX)) }), 422, 'shape-mismatch'],
    ['a mode the job does not use (a sync result)', () => body({ meta: { mode: 'sync' } }), 422, 'wrong-mode'],
    ['a plain float32 gradient result (no mode: sync)', () => encodeResult({ taskId: lease.taskId, leaseId: lease.leaseId, weightsVersion: lease.weights.version, count: lease.sample.count, loss: 1, correct: 0 }, deltas(), tensorShapes(JOB)), 422, 'wrong-mode'],
    ['an encoding the job does not use (f16)', () => body({ training: { ...T, up: 'f16' } }), 422, 'wrong-encoding'],
    ['int8 tensors labelled f32', () => body({ meta: { encoding: 'f32' } }), 422, 'wrong-encoding'],
    ['another block size', () => body({ meta: { blockSize: '128' } }), 422, 'wrong-encoding'],
    ['float16 tensors in an int8 body', () => body({ training: { ...T, up: 'f16' }, meta: { encoding: 'int8', blockSize: '64' } }), 422, 'wrong-encoding'],
    ['a delta against a version the worker never had', () => body({ meta: { weightsHash: 'ab'.repeat(32) } }), 409, 'unknown-version'],
    ['no weights hash', () => body({ meta: { weightsHash: undefined } }), 400, 'malformed-result'],
    ['another weights version', () => body({ meta: { weightsVersion: '1' } }), 409, 'stale-weights'],
    ['example count over all local steps differs', () => body({ meta: { count: String(lease.sample.count - 1) } }), 422, 'count-mismatch'],
    ['delta norm over the bound', () => body({ entries: () => encodedEntries(deltas(1e4), tensorShapes(JOB), 'int8', 64, { seed: 1, stream: 0 }) }), 422, 'norm-bound'],
  ];

  for (const [name, make, status, code] of cases) {
    it(`${name}: ${status} ${code}`, async () => {
      const before = await snapshot();
      const res = await put(make());
      expect(res.status).toBe(status);
      const b = (await res.json()) as { error: string; detail: string };
      expect(b.error).toBe(code);
      expect(b.detail.length).toBeGreaterThan(10);
      expect(await snapshot()).toBe(before);
    });
  }

  it('after all that, a valid body for the lease is accepted', async () => {
    const before = rig.coord.summary(jobId).rejectedResults;
    expect(before).toBe(cases.length);
    const res = await put(encodeTrainingResult(JOB, T, lease.partition.index, { taskId: lease.taskId, leaseId: lease.leaseId, weightsVersion: lease.weights.version, weightsHash: lease.weights.hash, count: lease.sample.count, loss: 1.5, correct: 0 }, deltas(), tensorShapes(JOB)));
    expect(res.status).toBe(200);
    expect(((await res.json()) as { accepted: boolean }).accepted).toBe(true);
    expect(rig.coord.summary(jobId).tasks.done).toBe(1);
  });
});
