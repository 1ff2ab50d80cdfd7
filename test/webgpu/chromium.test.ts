/**
 * The webgpu checks (cases.ts) in a second real WebGPU runtime: Chromium
 * (SwiftShader on CPU-only machines) through playwright-core, on a page that
 * Vite serves from 127.0.0.1 (a secure context). Needs /usr/bin/chromium
 * (or CHROMIUM_PATH); skipped when it is missing.
 *
 * `deno test test/webgpu/` also finds this file (it matches *.test.ts): under
 * Deno it defines nothing, so its runtime imports are dynamic.
 */
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import type { ViteDevServer } from 'vite';
import type { CaseResult } from './browser-main.ts';

if (!('Deno' in globalThis)) await defineSuite();

async function defineSuite(): Promise<void> {
  const { chromium } = await import('playwright-core');
  const { createServer } = await import('vite');
  const { afterAll, beforeAll, describe, expect, it } = await import('vitest');
  const { CASES } = await import('./cases.ts');

  const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
  const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
  const available = existsSync(executablePath);

  describe.skipIf(!available)('webgpu backend in Chromium', () => {
    let server: ViteDevServer;
    let browser: Browser;
    let adapter = '';
    const logs: string[] = [];
    const results = new Map<string, CaseResult>();

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
        args: ['--enable-unsafe-webgpu', '--no-sandbox', '--headless=new', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
      });
      const page = await browser.newPage();
      page.on('console', (m) => logs.push(m.text()));
      page.on('pageerror', (e) => logs.push(String(e)));
      await page.goto(`http://127.0.0.1:${port}/test/webgpu/browser.html`);
      await page.waitForFunction(() => 'runWebGpuCases' in globalThis, undefined, { timeout: 60_000 }).catch((e: unknown) => {
        throw new Error(`the test page did not load: ${(e as Error).message}\n${logs.join('\n')}`);
      });
      const out = await page.evaluate(() => (globalThis as unknown as { runWebGpuCases: () => Promise<{ adapter: string; results: CaseResult[] }> }).runWebGpuCases());
      adapter = out.adapter;
      for (const r of out.results) results.set(r.name, r);
    }, 300_000);

    afterAll(async () => {
      await browser?.close();
      await server?.close();
    });

    it('runs on a WebGPU adapter', () => {
      console.log(`chromium webgpu adapter: ${adapter}`);
      // the whole-task agreement figures (cases.ts) as the page printed them
      for (const l of logs) if (l.startsWith('agreement ')) console.log(l);
      expect(adapter).not.toBe('');
    });

    for (const c of CASES) {
      it(c.name, () => {
        const r = results.get(c.name);
        expect(r, 'the page did not run this case').toBeDefined();
        if (!r!.ok) throw new Error(r!.error);
      });
    }
  });
}
