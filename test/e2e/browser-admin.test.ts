/**
 * The admin page in a real Chromium against a real coordinator: refuses
 * requests without the token, shows the workers, updates its charts from the
 * event stream as iterations complete, pauses and resumes the job from its
 * buttons, and shows config issues next to their fields. One in-process CPU
 * worker (Node, over HTTP) does the training. Screenshot in test-artifacts/.
 */
import { rmSync, statSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createCpuBackend } from '../../core/cpu/index.ts';
import type { JobConfig } from '../../core/model/config.ts';
import { GridWorker } from '../../client/worker/worker.ts';
import type { JobSummary } from '../../core/protocol/index.ts';
import { ADMIN_TOKEN, artifact, buildPages, launchChromium, startGrid, waitFor, watchConsole, type Grid } from './browser-harness.ts';

const JOB: Partial<JobConfig> = {
  name: 'admin-e2e',
  layers: [784, 32, 10],
  trainLimit: 1000,
  testLimit: 300,
  partitions: 2,
  seed: 5,
  pretrain: { epochs: 1.5, batchSize: 100, learningRate: { start: 0.05, decay: 1, min: 0.05 }, momentum: { start: 0.5, end: 0.9, rampEpochs: 1 }, weightCost: 0.0002 },
  finetune: { epochs: 10, batchSize: 100, learningRate: { start: 1.0, decay: 0.9, min: 0.05 }, momentum: { start: 0.5, end: 0.9, rampEpochs: 1 }, weightCost: 0 },
  checkpointEvery: 1000,
};

let webDir = '';
let grid: Grid;
let browser: Browser;
let page: Page;
let worker: GridWorker;
let jobId = '';
const log: string[] = [];

beforeAll(async () => {
  webDir = buildPages();
  grid = await startGrid(webDir);
  jobId = (await grid.job(JOB)).id;
  // Started once the page watches (below): the job is short, and on a loaded
  // machine Chromium's start-up alone can outlast it.
  worker = new GridWorker({ coordinator: grid.url, backend: await createCpuBackend(), name: 'node-cpu-1', runtime: 'node', leaseWaitMs: 2_000, throttle: 0.5 });
  browser = await launchChromium(false);
  page = await browser.newPage({ viewport: { width: 1360, height: 1000 } });
  log.push(...watchConsole(page, 'admin'));
}, 120_000);

afterAll(async () => {
  if (log.length) console.error(log.join('\n'));
  await worker?.stop();
  await browser?.close();
  await grid?.close();
  if (webDir) rmSync(webDir, { recursive: true, force: true });
});

const jobState = async (): Promise<string> => (await grid.admin<JobSummary>(`/api/v1/admin/jobs/${jobId}`)).state;
const chartPoints = async (): Promise<number> => Number((await page.evaluate(() => document.body.dataset.chartPoints)) ?? 0);

describe('admin page', () => {
  test('refuses requests without the token, on the API and on the page', async () => {
    const res = await fetch(`${grid.url}/api/v1/admin/jobs`);
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: string }).error).toBe('unauthorized');
    expect((await fetch(`${grid.url}/api/v1/admin/events`)).status).toBe(401);
    expect((await fetch(`${grid.url}/api/v1/admin/jobs`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);

    // the pages are served with their content types; nothing outside dist/web is
    const html = await fetch(`${grid.url}/admin`);
    expect(html.headers.get('content-type')).toMatch(/^text\/html/);
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(await html.text())![1]!;
    const js = await fetch(grid.url + script);
    expect(js.headers.get('content-type')).toMatch(/^text\/javascript/);
    expect(js.headers.get('cache-control')).toContain('immutable');
    for (const bad of ['/%2e%2e/package.json', '/assets/%2e%2e%2f%2e%2e%2fpackage.json', '/assets/..%5c..%5cpackage.json', '/.%2e/vite.config.ts']) {
      expect((await fetch(grid.url + bad)).status, bad).toBe(404);
    }

    await page.goto(`${grid.url}/admin`);
    await page.fill('#token', 'not-the-token');
    await page.click('#login-form button[type=submit]');
    await waitFor(async () => ((await page.locator('#login-error').textContent()) ?? '').includes('refused'), 10_000, 'the page to refuse the token');
    expect(await page.locator('#dash').isHidden()).toBe(true);
    expect(await page.evaluate(() => sessionStorage.getItem('tessera.adminToken'))).toBeNull();
  });

  test('with the token: shows the workers and updates its charts as iterations complete', async () => {
    await page.fill('#token', ADMIN_TOKEN);
    await page.click('#login-form button[type=submit]');
    await waitFor(async () => page.locator('#dash').isVisible(), 10_000, 'the dashboard');
    await waitFor(async () => (await page.locator('#live').textContent()) === 'live', 10_000, 'the event stream');
    void worker.start();
    await waitFor(async () => (await page.locator('#workers tbody tr[data-runtime=node]').count()) === 1, 15_000, 'the worker in the table');
    expect(await page.locator('#workers tbody').textContent()).toContain('node-cpu-1');
    const before = await chartPoints();
    await waitFor(async () => (await chartPoints()) >= before + 3, 60_000, 'three more iterations on the charts');
    // Hold the only worker, so the job is still running (not done) when the next test pauses it from the page.
    worker.pause();
    expect(await page.locator('#job-state').textContent()).toBe('running');
    await waitFor(async () => ((await page.locator('#eta').textContent()) ?? '').startsWith('ETA'), 10_000, 'an ETA');
    await page.screenshot({ path: artifact('admin-running.png'), fullPage: true });
    // the token survives a reload (sessionStorage), and the page needs no second login
    await page.reload();
    await waitFor(async () => page.locator('#dash').isVisible(), 10_000, 'the dashboard after a reload');
  }, 90_000);

  test('pause and resume work from the page', async () => {
    await waitFor(async () => page.locator('#act-pause').isEnabled(), 10_000, 'the pause button');
    await page.click('#act-pause');
    await waitFor(async () => (await jobState()) === 'paused', 10_000, 'the job to pause');
    await waitFor(async () => (await page.locator('#job-state').textContent()) === 'paused', 10_000, 'the page to show paused');
    const at = (await grid.admin<JobSummary>(`/api/v1/admin/jobs/${jobId}`)).iteration;
    await new Promise((r) => setTimeout(r, 1500));
    // at most the iteration in flight completes while paused
    expect((await grid.admin<JobSummary>(`/api/v1/admin/jobs/${jobId}`)).iteration).toBeLessThanOrEqual(at + 1);
    await page.click('#act-resume');
    await waitFor(async () => (await jobState()) === 'running', 10_000, 'the job to resume');
    const points = await chartPoints();
    worker.resume();
    await waitFor(async () => (await chartPoints()) > points, 30_000, 'iterations after resuming');
  }, 60_000);

  test('a config with problems is refused and each issue shows next to its field', async () => {
    await page.fill('input[name="partitions"]', '0');
    await page.fill('input[name="finetune.learningRate.start"]', '-1');
    await page.click('#job-form button[type=submit]');
    const err = (field: string) => page.locator(`label[data-field="${field}"] .field-error`).textContent();
    await waitFor(async () => ((await err('partitions')) ?? '').length > 0, 10_000, 'the partitions error');
    expect(await err('partitions')).toMatch(/integer/);
    expect(await err('finetune.learningRate.start')).toMatch(/number/);
    expect(await err('name')).toBe('');
    expect((await grid.admin<{ jobs: JobSummary[] }>('/api/v1/admin/jobs')).jobs).toHaveLength(1);
  });

  test('the job finishes; the page shows the filters, the test error and the confusion matrix', async () => {
    await waitFor(async () => (await jobState()) === 'done', 90_000, 'the job to finish', 500);
    await waitFor(async () => (await page.locator('#job-state').textContent()) === 'done', 10_000, 'the page to show done');
    await waitFor(async () => (await page.locator('#confusion table td').count()) === 100, 15_000, 'the confusion matrix');
    await waitFor(async () => page.locator('#filters').isVisible(), 10_000, 'the filters');
    // the charts against time, then back against iterations
    await page.click('#x-time');
    await waitFor(async () => ((await page.locator('#chart-loss').getAttribute('data-key')) ?? '').endsWith('time'), 5_000, 'the time axis');
    await page.click('#x-iter');
    await page.screenshot({ path: artifact('admin.png'), fullPage: true });
    expect(await page.locator('#s-test').textContent()).toMatch(/%/);
    // the job's mode, and what it moved per trained example
    expect(await page.locator('#job-mode').textContent()).toBe('· sync');
    expect(await page.locator('#s-per-example').textContent()).toMatch(/\d.*B/);
    // download the current weights (safetensors) from the page
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#act-weights')]);
    expect(download.suggestedFilename()).toMatch(/\.safetensors$/);
    const path = await download.path();
    expect(statSync(path).size).toBeGreaterThan(784 * 32 * 4);
  }, 120_000);

  test('the form creates a local-SGD job; a bad training field shows next to it', async () => {
    await page.fill('input[name="partitions"]', '2');
    await page.fill('input[name="finetune.learningRate.start"]', '0.5');
    await page.selectOption('select[name="training.mode"]', 'local-sgd');
    await page.fill('input[name="training.localSteps"]', '0');
    await page.click('#job-form button[type=submit]');
    const err = (field: string) => page.locator(`label[data-field="${field}"] .field-error`).textContent();
    await waitFor(async () => ((await err('training.localSteps')) ?? '').length > 0, 10_000, 'the local steps error');
    expect(await err('training.localSteps')).toMatch(/integer/);
    expect((await grid.admin<{ jobs: JobSummary[] }>('/api/v1/admin/jobs')).jobs).toHaveLength(1);
    await page.fill('input[name="training.localSteps"]', '5');
    await page.selectOption('select[name="training.up"]', 'f16');
    await page.uncheck('input[name="startNow"]');
    await page.click('#job-form button[type=submit]');
    await waitFor(async () => ((await page.locator('#form-ok').textContent()) ?? '').startsWith('created'), 10_000, 'the job to be created');
    const jobs = (await grid.admin<{ jobs: JobSummary[] }>('/api/v1/admin/jobs')).jobs;
    expect(jobs).toHaveLength(2);
    const created = jobs.find((j) => j.id !== jobId)!;
    expect(created.config.training).toMatchObject({ mode: 'local-sgd', localSteps: 5, up: 'f16', down: 'f32' });
    await waitFor(async () => ((await page.locator('#job-mode').textContent()) ?? '').includes('local-sgd H=5'), 10_000, 'the page to show the new job\'s mode');
  });
});
