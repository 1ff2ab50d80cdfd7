/**
 * The BlobCache contract (test/core/blob-cache.case.ts) on the browser's
 * IndexedDB cache (client/web/idb-cache.ts), in a real Chromium through
 * playwright-core, on a page Vite serves from 127.0.0.1. Needs
 * /usr/bin/chromium (or CHROMIUM_PATH); skipped when it is missing.
 */
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { createServer, type ViteDevServer } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BLOB_CACHE_CASES } from '../core/blob-cache.case.ts';
import type { CacheCaseResult } from './idb-cache-main.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

describe.skipIf(!existsSync(executablePath))('BlobCache contract: IndexedDB, in Chromium', () => {
  let server: ViteDevServer;
  let browser: Browser;
  const results = new Map<string, CacheCaseResult>();

  beforeAll(async () => {
    const xdg = `/tmp/xdg-${process.getuid?.() ?? 'user'}`;
    mkdirSync(xdg, { recursive: true });
    chmodSync(xdg, 0o700);
    server = await createServer({
      root,
      configFile: false,
      logLevel: 'error',
      server: { host: '127.0.0.1', port: 0, hmr: false, watch: null },
      optimizeDeps: { noDiscovery: true, include: [] },
    });
    await server.listen();
    const addr = server.httpServer!.address();
    const port = typeof addr === 'object' && addr ? addr.port : 0;
    browser = await chromium.launch({
      executablePath,
      env: { ...process.env, XDG_RUNTIME_DIR: xdg },
      args: ['--no-sandbox', '--headless=new', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
    });
    const page = await browser.newPage();
    const logs: string[] = [];
    page.on('console', (m) => logs.push(m.text()));
    page.on('pageerror', (e) => logs.push(String(e)));
    await page.goto(`http://127.0.0.1:${port}/test/web/idb-cache.html`);
    await page.waitForFunction(() => 'runBlobCacheCases' in globalThis, undefined, { timeout: 60_000 }).catch((e: unknown) => {
      throw new Error(`the test page did not load: ${(e as Error).message}\n${logs.join('\n')}`);
    });
    const out = await page.evaluate(() => (globalThis as unknown as { runBlobCacheCases: () => Promise<CacheCaseResult[]> }).runBlobCacheCases());
    for (const r of out) results.set(r.name, r);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  for (const c of BLOB_CACHE_CASES) {
    it(c.name, () => {
      const r = results.get(c.name);
      expect(r, 'the page did not run this case').toBeDefined();
      if (!r!.ok) throw new Error(r!.error);
    });
  }
});
