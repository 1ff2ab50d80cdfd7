/// <reference lib="webworker" />
/**
 * A helper thread of the threaded CPU engine (threads.ts), a Web Worker (or,
 * in Node, a worker_threads Worker with a `self` shim, threads-node.ts).
 * It gets the shared kernels' module, the shared memory and the control
 * block in one message, answers 'ready', then loops: wait for the next job
 * on the control block, claim and run chunks of it while any are left. It never returns to
 * its event loop; the QUIT job (or terminate()) ends it.
 */
import { CTL, work, type SharedKernels } from './parallel.ts';

/** The one message a helper receives. */
export interface ThreadInit {
  readonly module: WebAssembly.Module;
  readonly memory: WebAssembly.Memory;
  readonly control: SharedArrayBuffer;
  /** this helper's number, 1..threads-1 (the caller is 0), for names and errors */
  readonly part: number;
}

self.onmessage = (e: MessageEvent<ThreadInit>): void => {
  const { module, memory, control } = e.data;
  const wasm = new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as SharedKernels;
  const ctl = new Int32Array(control);
  let seen = Atomics.load(ctl, CTL.GEN);
  self.postMessage('ready');
  for (;;) {
    Atomics.wait(ctl, CTL.GEN, seen);
    const gen = Atomics.load(ctl, CTL.GEN);
    if (gen === seen) continue;
    seen = gen;
    if (Atomics.load(ctl, CTL.QUIT)) break;
    work(ctl, memory, wasm, gen);
  }
  self.close();
};
