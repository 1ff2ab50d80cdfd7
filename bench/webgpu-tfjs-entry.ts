// Bundled by bench/gpu.sh --prepare into .carry/tfjs-webgpu.mjs, so the matmul
// benchmark can load @tensorflow/tfjs-backend-webgpu on a machine with no
// node_modules (TFJS_MODULE=.carry/tfjs-webgpu.mjs).
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-webgpu';

// The bundle keeps tfjs-core off its Node platform (see the vite config), and
// Deno has no `window`, so no platform is set: give it the web APIs Deno has.
const platform = {
  fetch: (input: string, init?: RequestInit) => fetch(input, init),
  now: () => performance.now(),
  encode: (text: string) => new TextEncoder().encode(text),
  decode: (bytes: Uint8Array, encoding: string) => new TextDecoder(encoding).decode(bytes),
  isTypedArray: (a: unknown) => ArrayBuffer.isView(a) && !(a instanceof DataView),
  setTimeoutCustom: (f: () => void, delay: number) => setTimeout(f, delay),
};
tf.setPlatform('deno', platform as unknown as Parameters<typeof tf.setPlatform>[1]);

export * from '@tensorflow/tfjs-core';
