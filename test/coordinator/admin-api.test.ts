/**
 * The admin page's API through app.request(): job status and metrics, the
 * workers list, the server-sent events stream, the weights download, and the
 * public status for the donate page.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tensorShapes } from '../../core/model/params.ts';
import { decodeWeights, type IterationMetricsRow, type PublicStatus } from '../../core/protocol/index.ts';
import type { JobSummary, WorkerView } from '../../core/protocol/index.ts';
import { ADMIN_TOKEN, inProcessWorker, makeRig, SMALL_JOB, type Rig } from './harness.ts';

let rig: Rig;
// An explicit folder, so the coordinator can be restarted on it (makeRig keeps folders it is given).
const dir = mkdtempSync(join(tmpdir(), 'tessera-admin-'));
beforeAll(async () => {
  rig = await makeRig({}, dir);
});
afterAll(async () => {
  await rig.close();
  rmSync(dir, { recursive: true, force: true });
});

async function readEvents(res: Response, until: (types: string[]) => boolean, timeoutMs = 10_000): Promise<{ type: string; data: unknown }[]> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  const events: { type: string; data: unknown }[] = [];
  const t0 = Date.now();
  while (!until(events.map((e) => e.type))) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`events so far: ${events.map((e) => e.type).join(', ')}`);
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let cut: number;
    while ((cut = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      const type = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (type && data) events.push({ type, data: JSON.parse(data) });
    }
  }
  await reader.cancel();
  return events;
}

describe('admin API', () => {
  it('streams events, lists workers, reports status and metrics, serves weights', async () => {
    const noJob = (await (await rig.app.request('/api/v1/status')).json()) as PublicStatus;
    expect(noJob).toEqual({ protocol: 1, job: null, workers: 0 });

    const stream = await rig.app.request(`/api/v1/admin/events?token=${ADMIN_TOKEN}`);
    expect(stream.status).toBe(200);
    expect(stream.headers.get('content-type')).toMatch(/text\/event-stream/);
    const created = await rig.admin('/api/v1/admin/jobs', { method: 'POST', body: JSON.stringify(SMALL_JOB) });
    expect(created.status).toBe(201);
    const job = (await created.json()) as JobSummary;
    expect(job.state).toBe('created');
    expect((await rig.admin(`/api/v1/admin/jobs/${job.id}/start`, { method: 'POST' })).status).toBe(200);
    expect((await rig.admin(`/api/v1/admin/jobs/${job.id}/start`, { method: 'POST' })).status).toBe(409);
    const w = await inProcessWorker(rig, 'admin-test');
    const run = w.start();
    const events = await readEvents(stream, (ts) => ts.includes('evaluation') && ts.includes('checkpoint') && ts.filter((t) => t === 'iteration').length >= 3);
    expect(events[0]!.type).toBe('hello');
    const types = new Set(events.map((e) => e.type));
    for (const t of ['job', 'phase', 'worker', 'iteration', 'checkpoint', 'evaluation']) expect(types).toContain(t);
    const it0 = events.find((e) => e.type === 'iteration')!.data as { metrics: IterationMetricsRow };
    expect(it0.metrics).toMatchObject({ iteration: 0, phase: 'pretrain layer 0', tasks: SMALL_JOB.partitions });
    await run;
    await rig.coord.idle();

    const summary = (await (await rig.admin(`/api/v1/admin/jobs/${job.id}`)).json()) as JobSummary;
    expect(summary).toMatchObject({ state: 'done', iteration: summary.totalIterations, checkpointIteration: summary.totalIterations });
    expect(summary.phases.map((p) => p.phase)).toEqual(['pretrain layer 0', 'pretrain layer 1', 'finetune']);
    expect(summary.lastEvaluation!.testError).toBeGreaterThan(0);
    expect(summary.tasks).toEqual({ pending: 0, leased: 0, done: summary.totalIterations * SMALL_JOB.partitions });

    const metrics = (await (await rig.admin(`/api/v1/admin/jobs/${job.id}/metrics?since=2`)).json()) as { iterations: IterationMetricsRow[]; evaluations: { phase: string }[] };
    expect(metrics.iterations[0]!.iteration).toBe(2);
    expect(metrics.iterations.length).toBe(summary.totalIterations - 2);
    expect(metrics.iterations.every((m) => m.count > 0 && m.bytesIn > 0 && Number.isFinite(m.loss))).toBe(true);
    expect(metrics.evaluations.map((e) => e.phase)).toEqual(['pretrain layer 0', 'pretrain layer 1', 'finetune']);

    const workers = ((await (await rig.admin('/api/v1/admin/workers')).json()) as { workers: WorkerView[] }).workers;
    expect(workers).toHaveLength(1);
    expect(workers[0]).toMatchObject({ name: 'admin-test', runtime: 'node', backend: 'cpu', state: 'left', tasksDone: summary.totalIterations * SMALL_JOB.partitions, rejected: 0 });

    const weights = await rig.admin(`/api/v1/admin/jobs/${job.id}/weights`);
    expect(weights.headers.get('content-disposition')).toMatch(/attachment/);
    expect(decodeWeights(new Uint8Array(await weights.arrayBuffer()), tensorShapes(SMALL_JOB)).version).toBe(summary.totalIterations);

    const list = (await (await rig.admin('/api/v1/admin/jobs')).json()) as { jobs: JobSummary[] };
    expect(list.jobs.map((j) => j.id)).toEqual([job.id]);
    expect((await rig.admin('/api/v1/admin/jobs/nope')).status).toBe(404);

    // Every evaluation keeps its confusion matrix (K x K counts over the test examples), also across a restart.
    type Evals = { evaluations: { iteration: number; confusion?: number[] }[] };
    const evals = ((await (await rig.admin(`/api/v1/admin/jobs/${job.id}/metrics`)).json()) as Evals).evaluations;
    expect(evals.length).toBe(3);
    for (const e of evals) {
      expect(e.confusion).toHaveLength(100);
      expect(e.confusion!.reduce((a, b) => a + b, 0)).toBe(SMALL_JOB.testLimit);
    }
    await rig.close();
    rig = await makeRig({}, dir);
    const again = ((await (await rig.admin(`/api/v1/admin/jobs/${job.id}/metrics`)).json()) as Evals).evaluations;
    expect(again).toEqual(evals);
  });
});
