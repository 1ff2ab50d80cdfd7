/**
 * The donate page in a real Chromium: on the automatic backend a tab whose
 * only WebGPU adapter is SwiftShader (software) takes the CPU backend; forced
 * to "WebGPU only" it completes tasks the coordinator accepts on WebGPU
 * (SwiftShader), and the same page without
 * WebGPU falls back to the CPU backend and still completes tasks. Then the
 * coordinator goes away and comes back: the page says so and carries on.
 * Screenshots go to test-artifacts/.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { JobConfig } from '../../core/model/config.ts';
import type { WorkerView } from '../../core/protocol/index.ts';
import { artifact, buildPages, launchChromium, startGrid, waitFor, watchConsole, type Grid } from './browser-harness.ts';

/** ~1 s per task on SwiftShader or the CPU backend: 784-32-10, 1000 examples, 2 partitions. */
const JOB: Partial<JobConfig> = {
  name: 'donate-e2e',
  layers: [784, 32, 10],
  trainLimit: 1000,
  testLimit: 200,
  partitions: 2,
  seed: 3,
  pretrain: { epochs: 2, batchSize: 100, learningRate: { start: 0.05, decay: 1, min: 0.05 }, momentum: { start: 0.5, end: 0.9, rampEpochs: 1 }, weightCost: 0.0002 },
  finetune: { epochs: 2, batchSize: 100, learningRate: { start: 0.1, decay: 1, min: 0.1 }, momentum: { start: 0.5, end: 0.9, rampEpochs: 1 }, weightCost: 0 },
  checkpointEvery: 1000,
};

let webDir = '';

beforeAll(() => {
  webDir = buildPages();
});
afterAll(() => {
  if (webDir) rmSync(webDir, { recursive: true, force: true });
});

async function tasksOnPage(page: Page): Promise<number> {
  return Number((await page.locator('#tasks').getAttribute('data-count')) ?? 0);
}
const stateOf = async (page: Page): Promise<string> => (await page.locator('#state').textContent()) ?? '';
const browserWorker = async (grid: Grid): Promise<WorkerView | undefined> =>
  (await grid.admin<{ workers: WorkerView[] }>('/api/v1/admin/workers')).workers.find((w) => w.runtime === 'browser' && w.state === 'active');

/** Sets document.hidden as a hidden (or shown) tab would, and fires visibilitychange. */
async function setHidden(page: Page, hidden: boolean): Promise<void> {
  await page.evaluate((h) => {
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => h });
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (h ? 'hidden' : 'visible') });
    document.dispatchEvent(new Event('visibilitychange'));
  }, hidden);
}

async function withTab<T>(webgpu: boolean, fn: (grid: Grid, page: Page) => Promise<T>): Promise<T> {
  const grid: Grid = await startGrid(webDir);
  let browser: Browser | null = null;
  const log: string[] = [];
  try {
    await grid.job(JOB);
    browser = await launchChromium(webgpu);
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    log.push(...watchConsole(page, webgpu ? 'webgpu' : 'cpu'));
    return await fn(grid, page);
  } catch (e) {
    console.error(log.join('\n'));
    throw e;
  } finally {
    await browser?.close();
    await grid.close();
  }
}

describe('donate page', () => {
  test('a tab with WebGPU starts, completes accepted tasks, draws filters, pauses when hidden, stops', async () => {
    await withTab(true, async (grid, page) => {
      // Automatic: the browser's WebGPU adapter here is SwiftShader, a software renderer, so the CPU backend runs
      await page.goto(`${grid.url}/?name=tab-auto&backend=auto`);
      await waitFor(async () => (await stateOf(page)) === 'idle', 10_000, 'the page to load');
      await page.click('#start');
      await waitFor(async () => (await page.locator('#backend-name').getAttribute('data-backend')) !== '', 30_000, 'a backend to be chosen');
      expect(await page.locator('#backend-name').getAttribute('data-backend')).toBe('cpu');
      expect(await page.locator('#fallback').textContent()).toMatch(/WebGPU not used: .*software renderer.*"WebGPU only" forces WebGPU/);
      await page.click('#stop');
      await waitFor(async () => (await stateOf(page)) === 'stopped', 15_000, 'the automatic tab to stop');
      await waitFor(async () => (await browserWorker(grid)) === undefined, 10_000, 'the automatic tab to leave');

      // WebGPU only: forced onto the software adapter, so WebGPU in the browser stays tested
      await page.goto(`${grid.url}/?name=tab-gpu&backend=webgpu`);
      await waitFor(async () => (await stateOf(page)) === 'idle', 10_000, 'the page to load');
      await page.click('#start');
      await waitFor(async () => (await tasksOnPage(page)) >= 3, 90_000, 'the tab to complete 3 tasks');
      expect(await page.locator('#backend-name').getAttribute('data-backend')).toBe('webgpu');
      expect(((await page.locator('#adapter').textContent()) ?? '').length).toBeGreaterThan(1);
      // the filters come from the weights the worker already holds
      await waitFor(async () => page.locator('#filters-empty').isHidden(), 15_000, 'the filters to be drawn');
      await page.screenshot({ path: artifact('donate-webgpu.png'), fullPage: true });
      const w = await browserWorker(grid);
      expect(w?.backend).toBe('webgpu');
      expect(w?.rejected).toBe(0);

      // throttle, then pause-when-hidden: hidden pauses, shown resumes
      await page.locator('#throttle').fill('50');
      await page.check('#hidden-pause');
      await setHidden(page, true);
      await waitFor(async () => (await stateOf(page)) === 'paused', 10_000, 'the hidden tab to pause');
      await setHidden(page, false);
      await waitFor(async () => (await stateOf(page)) !== 'paused', 10_000, 'the shown tab to resume');
      const n = await tasksOnPage(page);
      await waitFor(async () => (await tasksOnPage(page)) > n, 30_000, 'a task after resuming');

      // Stop: the tab hands its lease back and leaves
      await page.click('#stop');
      await waitFor(async () => (await stateOf(page)) === 'stopped', 15_000, 'the tab to stop');
      await waitFor(async () => (await browserWorker(grid)) === undefined, 10_000, 'the worker to leave');
    });
  }, 150_000);

  test('without WebGPU the page falls back to the CPU backend, completes tasks, reuses its IndexedDB cache, and leaves when the tab closes', async () => {
    await withTab(false, async (grid, page) => {
      await page.goto(`${grid.url}/?name=tab-cpu`);
      await page.click('#start');
      await waitFor(async () => (await tasksOnPage(page)) >= 3, 90_000, 'the tab to complete 3 tasks');
      expect(await page.locator('#backend-name').getAttribute('data-backend')).toBe('cpu');
      expect(await page.locator('#fallback').textContent()).toMatch(/WebGPU not used/);
      await page.screenshot({ path: artifact('donate-cpu.png'), fullPage: true });
      const w = await browserWorker(grid);
      expect(w?.backend).toBe('cpu');
      // the coordinator has accepted the tab's results (uploads run in the background, so wait for them)
      await waitFor(async () => ((await browserWorker(grid))?.tasksDone ?? 0) >= 1, 15_000, 'the coordinator to accept a result');
      expect(w?.rejected).toBe(0);

      // a returning volunteer: the partitions come from IndexedDB
      await page.reload();
      await page.click('#start');
      await waitFor(async () => (await tasksOnPage(page)) >= 2, 60_000, 'tasks after the reload');
      expect(Number(await page.locator('#cache').getAttribute('data-hits'))).toBeGreaterThan(0);

      // closing the tab hands the lease back and leaves (pagehide + fetch keepalive)
      await waitFor(async () => (await browserWorker(grid)) !== undefined, 10_000, 'the reloaded tab to register');
      await page.close({ runBeforeUnload: true });
      await waitFor(async () => (await browserWorker(grid)) === undefined, 10_000, 'the closed tab to leave');
    });
  }, 150_000);

  test('when the coordinator goes away the page says so, retries with backoff, and carries on when it is back', async () => {
    const first = await startGrid(webDir, {}, 0, mkdtempSync(join(tmpdir(), 'tessera-grid-offline-')));
    const dir = first.dir;
    const port = Number(new URL(first.url).port);
    let grid: Grid | null = first;
    let browser: Browser | null = null;
    try {
      await grid.job(JOB);
      browser = await launchChromium(false);
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      await page.goto(`${grid.url}/?name=tab-offline&backend=cpu&autostart=1`);
      await waitFor(async () => (await tasksOnPage(page)) >= 2, 60_000, 'the first tasks');
      await grid.close();
      grid = null;
      await waitFor(async () => (await stateOf(page)) === 'offline', 30_000, 'the page to notice');
      expect(await page.locator('#message').textContent()).toMatch(/cannot be reached.*Retrying in \d+ s/);
      await page.screenshot({ path: artifact('donate-offline.png'), fullPage: true });
      const n = await tasksOnPage(page);
      grid = await startGrid(webDir, {}, port, dir); // same port, same state: the job resumes from its checkpoint
      await waitFor(async () => (await tasksOnPage(page)) >= n + 2, 60_000, 'tasks after the coordinator came back');
      expect(await stateOf(page)).not.toBe('offline');
    } finally {
      await browser?.close();
      await grid?.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 150_000);
});
