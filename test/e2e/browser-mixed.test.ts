/**
 * A job trained by a headless Deno worker and a Chromium tab (the donate
 * page, WebGPU on SwiftShader) together: both complete tasks, the job
 * finishes, and the MLP reaches the stated test error.
 *
 * Job: 784-64-10 DBN on the first 3,000 MNIST training examples, 2 epochs of
 * CD-1 pre-training and 6 of fine-tuning, batch 100 over 3 partitions; test
 * error on the first 1,000 test examples. Stated bound: under 12%
 * (the in-process trainer on the same config: 9.0%).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { JobConfig } from '../../core/model/config.ts';
import type { JobSummary, WorkerView } from '../../core/protocol/index.ts';
import { artifact, buildPages, launchChromium, ROOT, startGrid, waitFor, watchConsole, type Grid } from './browser-harness.ts';

const STATED_TEST_ERROR = 0.12;

const JOB: Partial<JobConfig> = {
  name: 'mixed-784-64-10',
  layers: [784, 64, 10],
  trainLimit: 3000,
  testLimit: 1000,
  partitions: 3,
  seed: 11,
  pretrain: { epochs: 2, batchSize: 100, learningRate: { start: 0.05, decay: 1, min: 0.05 }, momentum: { start: 0.5, end: 0.9, rampEpochs: 1 }, weightCost: 0.0002 },
  finetune: { epochs: 6, batchSize: 100, learningRate: { start: 1.0, decay: 0.9, min: 0.02 }, momentum: { start: 0.5, end: 0.9, rampEpochs: 2 }, weightCost: 0 },
  checkpointEvery: 1000,
};

let webDir = '';
let grid: Grid;
let browser: Browser | null = null;
let deno: ChildProcess | null = null;
const cacheDir = mkdtempSync(join(tmpdir(), 'tessera-deno-cache-'));
const log: string[] = [];

beforeAll(async () => {
  webDir = buildPages();
  grid = await startGrid(webDir, { leaseTimeoutMs: 30_000 });
}, 60_000);

afterAll(async () => {
  if (deno && deno.exitCode === null) deno.kill('SIGTERM');
  await browser?.close();
  await grid?.close();
  rmSync(webDir, { recursive: true, force: true });
  rmSync(cacheDir, { recursive: true, force: true });
});

test('a Deno worker and a browser tab train one job together to its stated test error', async () => {
  const job = await grid.job(JOB);
  deno = spawn(
    join(ROOT, 'node_modules/.bin/deno'),
    ['run', '-A', 'client/deno/worker.ts', '--coordinator', grid.url, '--backend', 'cpu', '--name', 'deno-1', '--cache', cacheDir, '--exit-when-done', '--quiet'],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  deno.stdout!.on('data', (b: Buffer) => log.push(`[deno] ${b.toString().trimEnd()}`));
  deno.stderr!.on('data', (b: Buffer) => log.push(`[deno] ${b.toString().trimEnd()}`));

  browser = await launchChromium(true);
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  log.push(...watchConsole(page, 'tab'));
  await page.goto(`${grid.url}/?name=tab-1&autostart=1`);

  try {
    const summary = async (): Promise<JobSummary> => await grid.admin<JobSummary>(`/api/v1/admin/jobs/${job.id}`);
    await waitFor(async () => (await summary()).state === 'done', 210_000, 'the job to finish', 500);
    await grid.coord.idle(); // the final evaluation is recorded
    const s = await summary();
    const { workers } = await grid.admin<{ workers: WorkerView[] }>('/api/v1/admin/workers');
    const tab = workers.find((w) => w.runtime === 'browser');
    const den = workers.find((w) => w.runtime === 'deno');
    const tasksOnPage = Number(await page.locator('#tasks').getAttribute('data-count'));
    await page.screenshot({ path: artifact('donate-mixed.png'), fullPage: true });
    console.log(
      `mixed job: ${s.totalIterations} iterations, test error ${((s.lastEvaluation?.testError ?? 1) * 100).toFixed(2)}%; ` +
        `tab ${tasksOnPage} tasks (${tab?.backend}), deno ${den?.tasksDone} tasks (${den?.backend})`,
    );
    expect(s.lastEvaluation).not.toBeNull();
    expect(s.lastEvaluation!.iteration).toBe(s.totalIterations - 1);
    expect(s.lastEvaluation!.testError).toBeLessThan(STATED_TEST_ERROR);
    expect(s.rejectedResults).toBe(0);
    expect(tab && den).toBeTruthy();
    expect(tasksOnPage).toBeGreaterThan(0);
    expect(den!.tasksDone).toBeGreaterThan(0);
  } catch (e) {
    console.error(log.slice(-60).join('\n'));
    throw e;
  }
}, 300_000);
