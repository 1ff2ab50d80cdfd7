/**
 * The donate page on several CPU threads in a real Chromium: the page and its
 * assets carry COOP/COEP (coordinator/web/isolation.ts), so the page is
 * crossOriginIsolated; a tab asked for 2 threads runs the CPU backend on 2
 * threads (its donor worker spawns a helper worker sharing one WebAssembly
 * memory) and completes tasks the coordinator accepts.
 */
import { rmSync } from 'node:fs';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { JobConfig } from '../../core/model/config.ts';
import type { WorkerView } from '../../core/protocol/index.ts';
import { buildPages, launchChromium, startGrid, waitFor, watchConsole, type Grid } from './browser-harness.ts';

const JOB: Partial<JobConfig> = {
  name: 'threads-e2e',
  layers: [784, 32, 10],
  trainLimit: 1000,
  testLimit: 200,
  partitions: 2,
  seed: 5,
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

describe('donate page, CPU threads', () => {
  test('the page is cross-origin isolated and a tab trains on 2 CPU threads', async () => {
    const grid: Grid = await startGrid(webDir);
    let browser: Browser | null = null;
    const log: string[] = [];
    try {
      await grid.job(JOB);
      browser = await launchChromium(false);
      const page = await browser.newPage();
      log.push(...watchConsole(page, 'threads'));
      const res = await page.goto(`${grid.url}/?name=tab-threads&backend=cpu&threads=2&autostart=1`);
      expect(res?.headers()['cross-origin-opener-policy']).toBe('same-origin');
      expect(res?.headers()['cross-origin-embedder-policy']).toBe('require-corp');
      expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
      // an asset (the page's script) carries them too
      const script = await page.evaluate(() => document.querySelector<HTMLScriptElement>('script[type=module]')?.src ?? '');
      const asset = await fetch(script);
      expect(asset.headers.get('cross-origin-embedder-policy')).toBe('require-corp');
      expect(asset.headers.get('cross-origin-opener-policy')).toBe('same-origin');

      await waitFor(async () => Number((await page.locator('#tasks').getAttribute('data-count')) ?? 0) >= 3, 90_000, 'the tab to complete 3 tasks');
      expect(await page.locator('#adapter').textContent()).toBe('WebAssembly SIMD, 2 threads');
      const browserWorker = async (): Promise<WorkerView | undefined> =>
        (await grid.admin<{ workers: WorkerView[] }>('/api/v1/admin/workers')).workers.find((w) => w.runtime === 'browser' && w.state === 'active');
      await waitFor(async () => ((await browserWorker())?.tasksDone ?? 0) >= 2, 15_000, 'the coordinator to accept results');
      expect((await browserWorker())?.rejected).toBe(0);
      await page.click('#stop');
      await waitFor(async () => (await page.locator('#state').textContent()) === 'stopped', 15_000, 'the tab to stop');
    } catch (e) {
      console.error(log.join('\n'));
      throw e;
    } finally {
      await browser?.close();
      await grid.close();
    }
  }, 150_000);
});
