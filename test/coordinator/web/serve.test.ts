/**
 * The static pages (coordinator/web/serve.ts) through app.request(): the
 * path guard refuses traversal (plain and encoded), absolute paths, dot
 * files and files outside the root with the same 404 as a missing file;
 * what is there is served with its type and cache headers.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveWebPath, webApp } from '../../../coordinator/web/serve.ts';

let base = '';
let root = '';
let app: ReturnType<typeof webApp>;

beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), 'tessera-web-'));
  root = join(base, 'web');
  mkdirSync(join(root, 'assets'), { recursive: true });
  writeFileSync(join(root, 'index.html'), '<!doctype html><title>donate</title>');
  writeFileSync(join(root, 'admin.html'), '<!doctype html><title>admin</title>');
  writeFileSync(join(root, 'assets', 'app-1234.js'), 'console.log(1);');
  writeFileSync(join(root, 'assets', 'app-1234.js.map'), '{}');
  writeFileSync(join(root, '.env'), 'CONTENT-SECRET');
  writeFileSync(join(base, 'outside.txt'), 'CONTENT-OUTSIDE');
  mkdirSync(join(base, 'web-evil'));
  writeFileSync(join(base, 'web-evil', 'x.txt'), 'CONTENT-SIBLING');
  app = webApp({ dir: root });
});

afterAll(() => rmSync(base, { recursive: true, force: true }));

const get = async (path: string, method = 'GET'): Promise<Response> => await app.request(`http://tessera.test${path}`, { method });

describe('the static path guard', () => {
  it('resolveWebPath keeps every path inside the root', () => {
    expect(resolveWebPath(root, '/')).toBe(join(root, 'index.html'));
    expect(resolveWebPath(root, '/admin')).toBe(join(root, 'admin.html'));
    expect(resolveWebPath(root, '/assets/app-1234.js')).toBe(join(root, 'assets', 'app-1234.js'));
    for (const bad of ['/../outside.txt', '/assets/../../outside.txt', '/%2e%2e/outside.txt', '/assets/%2e%2e%2f%2e%2e%2foutside.txt', '/..%5coutside.txt', '/%2E%2E/web-evil/x.txt', '/index.html%00.js', '/.env', '/assets/.hidden', '/%E0%A4%A', '/./index.html']) {
      expect(resolveWebPath(root, bad), bad).toBeNull();
    }
    // absolute paths and doubled slashes stay under the root
    for (const abs of ['//etc/passwd', '/%2Fetc%2Fpasswd', `/${base.replaceAll(sep, '/')}/outside.txt`]) {
      const f = resolveWebPath(root, abs);
      expect(f === null || f.startsWith(root + sep), abs).toBe(true);
    }
  });

  it('over HTTP, each refused path is the same 404 as a missing file, and never shows the file', async () => {
    const refused = [
      '/%2e%2e/outside.txt',
      '/assets/%2e%2e%2f%2e%2e%2foutside.txt',
      '/..%5c..%5coutside.txt',
      '/%2e%2e/web-evil/x.txt',
      '/index.html%00',
      '/.env',
      '//etc/passwd',
      '/%2Fetc%2Fpasswd',
      `/${base.replaceAll(sep, '/')}/outside.txt`,
      '/assets',
      '/assets/',
      '/missing.js',
    ];
    for (const path of refused) {
      const res = await get(path);
      expect(res.status, path).toBe(404);
      const body = (await res.json()) as { error: string; detail: string };
      expect(body.error, path).toBe('not-found');
      expect(JSON.stringify(body)).not.toMatch(/CONTENT-/);
    }
  });

  it('leaves /api to the API', async () => {
    expect((await get('/api/v1/status')).status).toBe(404);
    expect(await (await get('/api/v1/status')).text()).toBe('404 Not Found'); // Hono's own: the sub-app passed it on
  });
});

describe('serving the pages', () => {
  it('pages are no-cache, hashed assets immutable, each with its type and nosniff', async () => {
    for (const [path, title] of [['/', 'donate'], ['/index.html', 'donate'], ['/admin', 'admin'], ['/admin/', 'admin']] as const) {
      const res = await get(path);
      expect(res.status, path).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/html/);
      expect(res.headers.get('cache-control')).toBe('no-cache');
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(await res.text()).toContain(`<title>${title}</title>`);
    }
    const js = await get('/assets/app-1234.js');
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toMatch(/^text\/javascript/);
    expect(js.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(await js.text()).toBe('console.log(1);');
    expect((await get('/assets/app-1234.js.map')).headers.get('content-type')).toMatch(/^application\/json/);
    const head = await get('/assets/app-1234.js', 'HEAD');
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String('console.log(1);'.length));
  });

  it('says how to build the pages when they are not built', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'tessera-web-empty-'));
    try {
      const res = await webApp({ dir: empty }).request('http://tessera.test/');
      expect(res.status).toBe(503);
      expect(await res.text()).toMatch(/npm run build:web/);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
