/**
 * The weights broadcast: every tensor of the model as safetensors, tagged
 * with its version.
 */
import type { JobConfig } from '../model/config.ts';
import type { Params } from '../model/params.ts';
import { encodeSafetensors, parseSafetensors, SafetensorsError, tensorData } from '../safetensors.ts';

export const WEIGHTS_FORMAT = 'tessera-weights';

/** Encodes the weights of one version (every tensor of the model) for broadcast. */
export function encodeWeights(cfg: JobConfig, params: Params, shapes: ReadonlyMap<string, readonly number[]>, version: number, jobId: string, into?: Uint8Array): Uint8Array {
  const entries: [string, { shape: readonly number[]; data: Float32Array }][] = [];
  for (const [name, shape] of shapes) {
    const t = params.get(name);
    if (!t) throw new Error(`encodeWeights: params lack "${name}"`);
    entries.push([name, { shape, data: t }]);
  }
  return encodeSafetensors(entries, { format: WEIGHTS_FORMAT, version: String(version), job: jobId, layers: cfg.layers.join('-') }, into);
}

/** Decodes a weights blob into params, checking every tensor's shape. */
export function decodeWeights(bytes: Uint8Array, shapes: ReadonlyMap<string, readonly number[]>): { params: Params; version: number } {
  const { metadata: md, spans } = parseSafetensors(bytes, { source: 'weights' });
  if (md.format !== WEIGHTS_FORMAT) throw new SafetensorsError(`weights: format ${JSON.stringify(md.format)}, expected "${WEIGHTS_FORMAT}"`);
  const byName = new Map(spans.map((sp) => [sp.name, sp]));
  const params: Params = new Map();
  for (const [name, shape] of shapes) {
    const sp = byName.get(name);
    if (!sp || sp.dtype !== 'F32' || sp.shape.join('x') !== shape.join('x')) {
      throw new SafetensorsError(`weights: tensor "${name}" missing or not F32[${shape}]`);
    }
    params.set(name, tensorData(bytes, sp, true) as Float32Array); // views of the blob: no copy
  }
  return { params, version: Number(md.version) };
}
