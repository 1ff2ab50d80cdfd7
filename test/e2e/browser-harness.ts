/**
 * Scaffolding of the browser suites: the web pages built by Vite into a
 * private folder, a real coordinator on 127.0.0.1 (a secure context, so
 * WebGPU and Web Crypto work) serving them, and Chromium via playwright-core
 * (WebGPU on SwiftShader, or with WebGPU left off).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { serve, type ServerType } from '@hono/node-server';
import { chromium, type Browser, type ConsoleMessage, type Page } from 'playwright-core';
import { createCpuBackend } from '../../core/cpu/index.ts';
import type { JobConfig } from '../../core/model/config.ts';
import { createApp } from '../../coordinator/http/app.ts';
import { sha256Hex } from '../../coordinator/auth.ts';
import { Coordinator, type CoordinatorOptions } from '../../coordinator/engine/coordinator.ts';
import type { JobSummary } from '../../core/protocol/index.ts';
import { mountWeb } from '../../coordinator/web/serve.ts';
import { ADMIN_TOKEN, dataFor } from '../coordinator/harness.ts';

export { ADMIN_TOKEN };
export const ROOT = resolve(import.meta.dirname, '../..');
export const ARTIFACTS = join(ROOT, 'test-artifacts');
export const CHROMIUM = process.env.TESSERA_CHROMIUM ?? '/usr/bin/chromium';

/** Chromium needs a private runtime folder; the test runner sets one, a bare `vitest` may not. */
export function ensureXdgRuntimeDir(): void {
  if (process.env.XDG_RUNTIME_DIR) return;
  const dir = join(tmpdir(), `tessera-xdg-${process.getuid?.() ?? 0}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  process.env.XDG_RUNTIME_DIR = dir;
}

/** Builds the pages into a fresh temporary folder (each suite its own, so suites never race on dist/web). */
export function buildPages(): string {
  const out = mkdtempSync(join(tmpdir(), 'tessera-web-'));
  execFileSync(join(ROOT, 'node_modules/.bin/vite'), ['build', '--logLevel', 'error', '--outDir', out, '--emptyOutDir'], { cwd: ROOT, stdio: 'inherit' });
  return out;
}

export interface Grid {
  readonly url: string;
  readonly coord: Coordinator;
  readonly dir: string;
  admin<T>(path: string, init?: RequestInit): Promise<T>;
  /** creates (and starts) a job; returns its summary */
  job(cfg: Partial<JobConfig>, start?: boolean): Promise<JobSummary>;
  close(): Promise<void>;
}

/** A coordinator serving the API and the pages built in `webDir` on 127.0.0.1, on a free port (or `port`). */
export async function startGrid(webDir: string, opts: Partial<CoordinatorOptions> = {}, port = 0, dataDir?: string): Promise<Grid> {
  const dir = dataDir ?? mkdtempSync(join(tmpdir(), 'tessera-grid-'));
  const coord = await Coordinator.open({
    dataDir: dir,
    loadData: dataFor,
    evalBackend: () => createCpuBackend(),
    leaseTimeoutMs: 20_000,
    heartbeatMs: 2_000,
    ...opts,
  });
  const app = createApp(coord, {
    adminTokenHash: sha256Hex(ADMIN_TOKEN),
    rateLimit: { perSecond: 10_000, burst: 10_000 },
    pages: (a) => mountWeb(a, coord, { dir: webDir }),
  });
  const server: ServerType = await new Promise((res) => {
    const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port }, () => res(s));
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const admin = async <T>(path: string, init: RequestInit = {}): Promise<T> => {
    const res = await fetch(url + path, {
      ...init,
      headers: { ...(init.body ? { 'content-type': 'application/json' } : {}), ...init.headers, authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    if (!res.ok) throw new Error(`${init.method ?? 'GET'} ${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  };
  return {
    url,
    coord,
    dir,
    admin,
    async job(cfg, start = true) {
      const j = await admin<JobSummary>('/api/v1/admin/jobs', { method: 'POST', body: JSON.stringify(cfg) });
      return start ? await admin<JobSummary>(`/api/v1/admin/jobs/${j.id}/start`, { method: 'POST' }) : j;
    },
    async close() {
      (server as { closeAllConnections?: () => void }).closeAllConnections?.();
      await new Promise<void>((r) => server.close(() => r()));
      await coord.close();
      if (!dataDir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Chromium with WebGPU (SwiftShader) on or off. */
export async function launchChromium(webgpu: boolean): Promise<Browser> {
  ensureXdgRuntimeDir();
  const args = [
    '--no-sandbox',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
    '--disable-quic',
    '--disable-dev-shm-usage',
    // keep a hidden or unfocused tab running at full speed
    '--disable-background-timer-throttling',
    '--disable-renderer-backgrounding',
  ];
  if (webgpu) args.push('--enable-unsafe-webgpu');
  return await chromium.launch({ executablePath: CHROMIUM, headless: true, args, timeout: 60_000 });
}

/** Collects the page's console errors and uncaught exceptions (printed when a test fails). */
export function watchConsole(page: Page, tag: string): string[] {
  const lines: string[] = [];
  page.on('console', (m: ConsoleMessage) => {
    if (m.type() === 'error' || m.type() === 'warning') lines.push(`[${tag} ${m.type()}] ${m.text()}`);
  });
  page.on('pageerror', (e) => lines.push(`[${tag} pageerror] ${e.message}`));
  return lines;
}

export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string, everyMs = 200): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export function artifact(name: string): string {
  mkdirSync(ARTIFACTS, { recursive: true });
  return join(ARTIFACTS, name);
}
