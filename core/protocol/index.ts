/**
 * Every wire format in one place, used by the coordinator, the Deno worker
 * and the browser alike: paths and headers (paths.ts), the JSON messages
 * (messages.ts), the result (results.ts), weights (weights.ts) and partition
 * (partition.ts) blobs. coordinator/API.md documents them for people.
 * Runtime-neutral: only web-standard APIs (TextEncoder, crypto.subtle).
 */
export * from './messages.ts';
export * from './partition.ts';
export * from './paths.ts';
export * from './results.ts';
export * from './weights.ts';
export * from './sketch.ts';
export * from './p2p.ts';
