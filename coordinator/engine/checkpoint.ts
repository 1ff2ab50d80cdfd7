/**
 * Checkpoints: the model's parameters and the optimizer's velocities as one
 * safetensors file, with the iteration and the job config in its metadata.
 * Written atomically (temp file, fsync, rename), so a crash mid-write leaves
 * the previous checkpoint intact.
 */
import { closeSync, existsSync, fsyncSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { decodeSafetensors, encodeSafetensors, SafetensorsError } from '../../core/safetensors.ts';
import type { JobConfig } from '../../core/model/config.ts';
import { tensorShapes, type Params } from '../../core/model/params.ts';

export const CHECKPOINT_FORMAT = 'tessera-checkpoint';
export const CHECKPOINT_VERSION = '1';

export interface Checkpoint {
  /** the next iteration to run: the weights are those before its update */
  readonly iteration: number;
  readonly params: Params;
  readonly velocity: Map<string, Float32Array>;
  readonly config: JobConfig;
}

export function encodeCheckpoint(ck: Checkpoint): Uint8Array {
  const shapes = tensorShapes(ck.config);
  const entries: [string, { shape: number[]; data: Float32Array }][] = [];
  for (const [name, shape] of shapes) {
    const t = ck.params.get(name);
    if (!t) throw new Error(`checkpoint: params lack "${name}"`);
    entries.push([name, { shape, data: t }]);
  }
  for (const [name, v] of ck.velocity) entries.push([`vel.${name}`, { shape: shapes.get(name) ?? [v.length], data: v }]);
  return encodeSafetensors(entries, {
    format: CHECKPOINT_FORMAT,
    version: CHECKPOINT_VERSION,
    iteration: String(ck.iteration),
    config: JSON.stringify(ck.config),
  });
}

/**
 * Decodes a checkpoint and checks it against the job: format, version, every
 * tensor present with its shape, all values finite. `expect` (when given)
 * must equal the stored config.
 */
export function decodeCheckpoint(bytes: Uint8Array, source = 'checkpoint', expect?: JobConfig): Checkpoint {
  const st = decodeSafetensors(bytes, { source });
  const fail = (msg: string): never => {
    throw new SafetensorsError(`${source}: ${msg}`);
  };
  const md = st.metadata;
  if (md.format !== CHECKPOINT_FORMAT) fail(`not a Tessera checkpoint (format ${JSON.stringify(md.format)}, expected "${CHECKPOINT_FORMAT}")`);
  if (md.version !== CHECKPOINT_VERSION) fail(`checkpoint version ${md.version}, this build reads version ${CHECKPOINT_VERSION}`);
  const iteration = Number(md.iteration);
  if (!Number.isSafeInteger(iteration) || iteration < 0) fail(`bad iteration ${JSON.stringify(md.iteration)}`);
  let config: JobConfig;
  try {
    config = JSON.parse(md.config ?? '') as JobConfig;
  } catch {
    return fail('metadata "config" is not JSON');
  }
  if (expect && JSON.stringify(expect) !== JSON.stringify(config)) fail('it was written for a different job config');
  const params: Params = new Map();
  const velocity = new Map<string, Float32Array>();
  const shapes = tensorShapes(config);
  for (const [name, t] of st.tensors) {
    const base = name.startsWith('vel.') ? name.slice(4) : name;
    const shape = shapes.get(base);
    if (!shape) fail(`unexpected tensor "${name}"`);
    if (t.dtype !== 'F32' || t.shape.join('x') !== shape!.join('x')) {
      fail(`tensor "${name}" is ${t.dtype}[${t.shape}], expected F32[${shape}]`);
    }
    const data = t.data as Float32Array;
    for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i]!)) fail(`tensor "${name}" holds a non-finite value at ${i}`);
    (name === base ? params : velocity).set(base, data);
  }
  for (const name of shapes.keys()) if (!params.has(name)) fail(`missing tensor "${name}"`);
  return { iteration, params, velocity, config };
}

/** Writes atomically: a crash leaves either the old file or the new one. */
export function writeFileAtomic(path: string, bytes: Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    try {
      let off = 0;
      while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true }); // leave no half-written file behind
    throw e;
  }
}

export function saveCheckpoint(path: string, ck: Checkpoint): void {
  writeFileAtomic(path, encodeCheckpoint(ck));
}

export function loadCheckpoint(path: string, expect?: JobConfig): Checkpoint {
  return decodeCheckpoint(new Uint8Array(readFileSync(path)), path, expect);
}

/** The file name of the checkpoint that resumes at `iteration` (names sort by iteration). */
export function checkpointName(iteration: number): string {
  return `checkpoint-${String(iteration).padStart(8, '0')}.safetensors`;
}

const CHECKPOINT_FILE = /^checkpoint-(\d{8})\.safetensors$/;
const TEMP_FILE = /^checkpoint-\d{8}\.safetensors\.tmp-(\d+)$/;

/**
 * Deletes the checkpoints of a job folder but the newest `keep` and those in
 * `protect` (a phase end whose evaluation is not recorded yet), going by
 * what is on disk, so files of earlier runs of the process are pruned too;
 * and half-written temp files of processes that died mid-write.
 */
export function pruneCheckpoints(dir: string, keep: number, protect: ReadonlySet<string> = new Set()): void {
  if (!existsSync(dir)) return;
  const names = readdirSync(dir);
  const checkpoints = names.filter((n) => CHECKPOINT_FILE.test(n)).sort().reverse();
  for (const name of checkpoints.slice(Math.max(1, keep))) if (!protect.has(join(dir, name))) rmSync(join(dir, name), { force: true });
  for (const name of names) {
    const m = TEMP_FILE.exec(name);
    if (m && Number(m[1]) !== process.pid) rmSync(join(dir, name), { force: true });
  }
}
