#!/usr/bin/env node
// Runs every suite (type-checks by tsc and deno check, Vitest — which drives the browser and end-to-end
// tests too — and Deno's own tests) and ends with one line: "N passed, N failed".
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
process.chdir(root);
if (!process.env.XDG_RUNTIME_DIR) {
  const dir = join(tmpdir(), `tessera-xdg-${process.getuid?.() ?? 0}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  process.env.XDG_RUNTIME_DIR = dir;
}
const args = process.argv.slice(2);
let passed = 0;
let failed = 0;

function run(cmd, argv, opts = {}) {
  console.log(`\n$ ${cmd} ${argv.join(' ')}`);
  return spawnSync(cmd, argv, { stdio: opts.capture ? ['ignore', 'pipe', 'inherit'] : 'inherit', encoding: 'utf8', ...opts });
}

// 1. Type-check (counts as one check).
const tsc = run('node_modules/.bin/tsc', ['-p', 'tsconfig.json']);
if (tsc.status === 0) passed++;
else failed++;

// 1b. Type-check the Deno worker with Deno's own types (tsc leaves client/deno out: it has no Deno types).
const dc = run('node_modules/.bin/deno', ['check', 'client/deno/worker.ts', 'client/deno/disk-cache.ts'], { env: { ...process.env, NO_COLOR: '1' } });
if (dc.status === 0) passed++;
else failed++;

// 2. Vitest, with a JSON report for the totals.
const out = mkdtempSync(join(tmpdir(), 'tessera-vitest-'));
const report = join(out, 'report.json');
const vt = run('node_modules/.bin/vitest', ['run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...args]);
try {
  const r = JSON.parse(readFileSync(report, 'utf8'));
  passed += r.numPassedTests;
  failed += r.numFailedTests;
  // a file that failed to load counts as a failure too
  failed += r.testResults.filter((f) => f.status === 'failed' && f.assertionResults.length === 0).length;
} catch {
  console.error('vitest wrote no report');
  failed++;
}
if (vt.status !== 0 && failed === 0) failed++;

// 3. Deno's suites (WebGPU on lavapipe, the Deno worker).
// Only the *.deno.test.ts files: Deno's default pattern would also pick up Vitest's suites.
const denoSuites = readdirSync('test', { recursive: true })
  .map(String)
  .filter((f) => f.endsWith('.deno.test.ts'))
  .sort()
  .map((f) => join('test', f));
if (args.length === 0 && denoSuites.length > 0) {
  const dt = run('node_modules/.bin/deno', ['test', '-A', ...denoSuites], { capture: true, env: { ...process.env, NO_COLOR: '1' } });
  const text = (dt.stdout ?? '').replace(/\x1b\[[0-9;]*m/g, '');
  process.stdout.write(text);
  const m = /(ok|FAILED) \| (\d+) passed(?: \(\d+ steps?\))? \| (\d+) failed/.exec(text);
  if (m) {
    passed += Number(m[2]);
    failed += Number(m[3]);
    if (dt.status !== 0 && Number(m[3]) === 0) failed++;
  } else {
    console.error('deno test printed no summary');
    failed++;
  }
}

console.log(`\n${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
