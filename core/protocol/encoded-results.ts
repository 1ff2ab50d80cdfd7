/**
 * The result body of a job with a training config (model/training.ts): the
 * same safetensors result as protocol.ts's (format "tessera-result", the
 * same accounting metadata), with its tensors in the job's up encoding
 * (encoded-tensors.ts) and two more metadata keys:
 *
 * | key | value |
 * | --- | --- |
 * | `mode` | `sync` (gradient sums) or `local-sgd` (the weight deltas W_local - W_r of the phase's tensors, summed over a bundle's tasks) |
 * | `encoding` | `f32`, `f16` or `int8` (must be the job's `training.up`) |
 * | `blockSize` | int8 only: values per scale (must be the job's) |
 * | `weightsHash` | the hash of the whole weights blob the task computed on (the lease's `weights.hash`; a delta against weights the coordinator did not publish for this lease is refused) |
 *
 * Stochastic rounding of tensor i draws from (taskSeed(job seed, partition
 * of the result's own lease), weightsVersion, i), so the body is a pure
 * function of the task. A job without a training config keeps the plain
 * float32 result of protocol.ts, decoded by decodeResult.
 */
import { encodedEntries, EncodingError, readEncoded, taskSeed, type EncodedTensor } from './encoded-tensors.ts';
import type { JobConfig } from '../model/config.ts';
import type { TensorEncoding, TrainingConfig, TrainingMode } from '../model/training.ts';
import { PROTOCOL_VERSION } from './paths.ts';
import { readResultEnvelope, RESULT_FORMAT, type ResultMeta } from './results.ts';
import { encodeSafetensors } from '../safetensors.ts';

export interface EncodedResultMeta extends ResultMeta {
  readonly mode: TrainingMode;
  readonly encoding: TensorEncoding;
  readonly weightsHash: string;
}

/** The rounding seed of a result whose own lease is on `partition`. */
export function resultSeed(cfg: JobConfig, partition: number, weightsVersion: number): { seed: number; stream: number } {
  return { seed: taskSeed(cfg.seed, partition), stream: weightsVersion };
}

/** Encodes a result (gradient sums or deltas, in phaseTensors order) in the job's up encoding. */
export function encodeTrainingResult(
  cfg: JobConfig,
  training: TrainingConfig,
  partition: number,
  meta: ResultMeta & { readonly weightsHash: string },
  tensors: ReadonlyMap<string, Float32Array>,
  shapes: ReadonlyMap<string, readonly number[]>,
): Uint8Array {
  const entries = encodedEntries(tensors, shapes, training.up, training.blockSize, resultSeed(cfg, partition, meta.weightsVersion));
  return encodeSafetensors(entries, {
    format: RESULT_FORMAT,
    protocol: String(PROTOCOL_VERSION),
    taskId: meta.taskId,
    leaseId: meta.leaseId,
    weightsVersion: String(meta.weightsVersion),
    weightsHash: meta.weightsHash,
    count: String(meta.count),
    loss: String(meta.loss),
    correct: String(meta.correct),
    mode: training.mode,
    encoding: training.up,
    ...(training.up === 'int8' ? { blockSize: String(training.blockSize) } : {}),
    ...(meta.bundle?.length ? { bundle: meta.bundle.join(',') } : {}),
  });
}

export interface DecodedTrainingResult {
  readonly meta: EncodedResultMeta;
  /** still encoded: views of the body where aligned */
  readonly tensors: Map<string, EncodedTensor>;
}

/**
 * Checks an untrusted result body of a job with a training config without
 * copying its tensors: structure, metadata, the mode and encoding the job
 * uses, every tensor (readEncoded). Throws EncodingError with the code to
 * answer with ('malformed-result' is a 400, the others 422).
 */
export function decodeTrainingResult(bytes: Uint8Array, shapes: ReadonlyMap<string, readonly number[]>, training: TrainingConfig): DecodedTrainingResult {
  const { md, spans, meta: base } = readResultEnvelope(bytes, (code, detail) => {
    throw new EncodingError(code, detail);
  });
  const bad = (msg: string): never => {
    throw new EncodingError('malformed-result', `result: metadata: ${msg}`);
  };
  const mode = md.mode ?? 'sync';
  if (mode !== training.mode) throw new EncodingError('wrong-mode', `result is for mode ${JSON.stringify(mode)}, this job trains in mode "${training.mode}"`);
  const encoding = md.encoding ?? 'f32';
  if (encoding !== training.up) throw new EncodingError('wrong-encoding', `result is encoded ${JSON.stringify(encoding)}, this job's results travel as "${training.up}"`);
  if (encoding === 'int8' && md.blockSize !== String(training.blockSize)) {
    throw new EncodingError('wrong-encoding', `result's int8 blocks hold ${JSON.stringify(md.blockSize)} values, this job's hold ${training.blockSize}`);
  }
  const weightsHash = md.weightsHash ?? '';
  if (!/^[0-9a-f]{64}$/.test(weightsHash)) bad(`"weightsHash" must be the 64 hex digits of the weights blob the result was computed on`);
  const meta: EncodedResultMeta = { ...base, mode: training.mode, encoding: training.up, weightsHash };
  const tensors = readEncoded(bytes, spans, shapes, training.up, training.blockSize, 'result');
  return { meta, tensors };
}
