/**
 * Node's way to start a helper thread of the threaded CPU engine: a
 * worker_threads Worker that gives thread.ts the `self` it expects (one
 * message in, postMessage out, close) and loads it through tsx, since
 * Node 20 cannot load TypeScript by itself. Node-only (tests, benchmarks,
 * the in-process trainer); browsers and Deno use threads.ts's webSpawner.
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { ThreadEndpoint, ThreadSpawner } from './threads.ts';

const THREAD_URL = new URL('./thread.ts', import.meta.url).href;

/** Starts thread.ts in a worker_threads Worker (unref'd: a helper never keeps the process alive). */
export const nodeSpawner: ThreadSpawner = (part): ThreadEndpoint => {
  // tsx's ESM API (its CommonJS twin sits beside it; require.resolve finds that one)
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx/esm/api').replace(/\.cjs$/, '.mjs')).href;
  const boot = `
    const { parentPort } = require('node:worker_threads');
    globalThis.self = globalThis;
    globalThis.postMessage = (m) => parentPort.postMessage(m);
    globalThis.close = () => process.exit(0);
    let init = null;
    let loaded = false;
    const deliver = () => { if (init && loaded) globalThis.onmessage({ data: init }); };
    parentPort.once('message', (data) => { init = data; deliver(); });
    import(${JSON.stringify(tsx)})
      .then(({ register }) => { register(); return import(${JSON.stringify(THREAD_URL)}); })
      .then(() => { loaded = true; deliver(); });
  `;
  const w = new Worker(boot, { eval: true, name: `tessera-cpu-thread-${part}` });
  w.unref();
  return {
    postMessage: (m) => w.postMessage(m),
    onReady: (fn) => {
      w.once('message', () => fn(null));
      w.once('error', (e) => fn(new Error(`CPU thread ${part} failed to start: ${e.message}`)));
    },
    terminate: () => void w.terminate(),
  };
};
