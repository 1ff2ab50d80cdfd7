/**
 * The `webgpu` compute backend and the typed wrapper it is built on.
 * Kernels: shaders/*.wgsl, loaded through the generated shaders.gen.ts.
 */
export { createWebGpuBackend } from './webgpu-backend.ts';
export type { Versioned, WebGpuBackend, WebGpuBackendOptions, WebGpuStats } from './webgpu-backend.ts';
export { Gpu, GpuError, kernelKey, kernelSource, Recording } from './gpu.ts';
export type { AdapterSummary, GpuCounters, GpuOptions, KernelSpec } from './gpu.ts';
export { colsum, CPU_TUNING, DENSE_SOFTMAX_KMAX, denseSoftmax, GPU_TUNING, GPU_TUNING_SCALAR, matmul, matmulKernel, matmulSpec, matmulTile, softmaxXent, vec4Fits } from './kernels.ts';
export type { Dummies, Epilogue, MatmulArgs, MatmulForm, MatmulTile, MatmulTuning } from './kernels.ts';
export { WGSL } from './shaders.gen.ts';
export type { ShaderName } from './shaders.gen.ts';
