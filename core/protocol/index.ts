/**
 * Every wire format in one place, used by the coordinator, the Deno worker
 * and the browser alike: paths and headers (paths.ts), the JSON messages
 * (messages.ts), the result (results.ts), weights (weights.ts) and partition
 * (partition.ts) blobs, and the training modes' formats: tensors in f32 /
 * f16 / int8 blocks (encoded-tensors.ts), their results (encoded-results.ts)
 * and the weights-delta chain (weights-delta.ts). coordinator/API.md
 * documents them for people. Runtime-neutral: only web-standard APIs (TextEncoder, crypto.subtle).
 */
export * from './encoded-results.ts';
export * from './encoded-tensors.ts';
export * from './messages.ts';
export * from './partition.ts';
export * from './paths.ts';
export * from './results.ts';
export * from './weights.ts';
export * from './weights-delta.ts';
export * from './sketch.ts';
export * from './p2p.ts';
