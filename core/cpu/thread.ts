/**
 * A helper thread of the threaded CPU engine (threads.ts), a Web Worker (or,
 * in Node, a worker_threads Worker with a `self` shim, threads-node.ts).
 * It gets the shared kernels' module, the shared memory and the control
 * block in one message, answers 'ready', then loops: wait for the next job
 * on the control block, claim and run chunks of it while any are left. It never returns to
 * its event loop; the QUIT job (or terminate()) ends it.
 */
import { CTL, work, type SharedKernels, type ThreadInit } from './parallel.ts';

/**
 * The worker scope, typed here rather than through the webworker lib (a lib
 * reference would retype `navigator` for every file Deno checks with this one).
 */
const scope = globalThis as unknown as {
  onmessage: ((e: { data: ThreadInit }) => void) | null;
  postMessage(message: 'ready'): void;
  close(): void;
};

scope.onmessage = (e): void => {
  const { module, memory, control } = e.data;
  const wasm = new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as SharedKernels;
  const ctl = new Int32Array(control);
  let seen = Atomics.load(ctl, CTL.GEN);
  scope.postMessage('ready');
  for (;;) {
    Atomics.wait(ctl, CTL.GEN, seen);
    const gen = Atomics.load(ctl, CTL.GEN);
    if (gen === seen) continue;
    seen = gen;
    if (Atomics.load(ctl, CTL.QUIT)) break;
    work(ctl, memory, wasm, gen);
  }
  scope.close();
};
