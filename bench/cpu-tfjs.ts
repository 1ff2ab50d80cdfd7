/**
 * Shared by the CPU benchmarks: TF.js set up on a named backend in Node
 * (the wasm backend's binaries loaded from node_modules), and a timer.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';

export { tf };

/** Switches TF.js to 'wasm' or 'cpu'; returns a description of what runs. */
export async function useTfBackend(name: 'wasm' | 'cpu'): Promise<string> {
  if (name === 'wasm') {
    const dir = path.dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm/package.json'));
    setWasmPaths(path.join(dir, 'dist') + path.sep);
  }
  if (!(await tf.setBackend(name))) throw new Error(`TF.js backend ${name} failed to initialise`);
  await tf.ready();
  if (name === 'cpu') return 'TF.js cpu (plain JS)';
  const simd = tf.env().getBool('WASM_HAS_SIMD_SUPPORT');
  const threads = tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT');
  return `TF.js wasm (${simd ? 'SIMD' : 'no SIMD'}, ${threads ? 'threads' : '1 thread'})`;
}

/**
 * Calls per second of fn: two warm-up calls, then `rounds` rounds of at least
 * `roundMs` each; the median round's rate.
 */
export function rate(fn: () => void, roundMs = 300, rounds = 5): number {
  fn();
  fn();
  const rates: number[] = [];
  for (let r = 0; r < rounds; r++) {
    let n = 0;
    const t0 = performance.now();
    let t = t0;
    while (t - t0 < roundMs) {
      fn();
      n++;
      t = performance.now();
    }
    rates.push((n * 1000) / (t - t0));
  }
  rates.sort((a, b) => a - b);
  return rates[Math.floor(rates.length / 2)]!;
}

/** Async variant of rate(). */
export async function rateAsync(fn: () => Promise<void>, roundMs = 300, rounds = 5): Promise<number> {
  await fn();
  await fn();
  const rates: number[] = [];
  for (let r = 0; r < rounds; r++) {
    let n = 0;
    const t0 = performance.now();
    let t = t0;
    while (t - t0 < roundMs) {
      await fn();
      n++;
      t = performance.now();
    }
    rates.push((n * 1000) / (t - t0));
  }
  rates.sort((a, b) => a - b);
  return rates[Math.floor(rates.length / 2)]!;
}
