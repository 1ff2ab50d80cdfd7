// Bundles @tensorflow/tfjs-core + tfjs-backend-webgpu into .carry/tfjs-webgpu.mjs (bench/gpu.sh --prepare).
export default {
  configFile: false,
  logLevel: 'warn',
  // Deno has a global `process`: keep tfjs-core off its Node platform (require('util')).
  define: { 'process.versions': '{}' },
  build: {
    outDir: '.carry', emptyOutDir: false, minify: true,
    lib: { entry: 'bench/webgpu-tfjs-entry.ts', formats: ['es'], fileName: () => 'tfjs-webgpu.mjs' },
  },
};
