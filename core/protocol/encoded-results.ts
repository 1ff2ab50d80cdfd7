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
import { MAX_TASKS_PER_REQUEST } from './messages.ts';
import { PROTOCOL_VERSION } from './paths.ts';
import { RESULT_FORMAT, type ResultMeta } from './results.ts';
import { encodeSafetensors, parseSafetensors, SafetensorsError } from '../safetensors.ts';

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
  const malformed = (msg: string): never => {
    throw new EncodingError('malformed-result', `result: ${msg}`);
  };
  let parsed: ReturnType<typeof parseSafetensors>;
  try {
    parsed = parseSafetensors(bytes, { source: 'result', maxHeaderBytes: 64 * 1024 });
  } catch (e) {
    if (e instanceof SafetensorsError) throw new EncodingError('malformed-result', e.message);
    throw e;
  }
  const { metadata: md, spans } = parsed;
  const bad = (msg: string): never => malformed(`metadata: ${msg}`);
  if (md.format !== RESULT_FORMAT) bad(`format is ${JSON.stringify(md.format)}, expected "${RESULT_FORMAT}"`);
  if (md.protocol !== String(PROTOCOL_VERSION)) bad(`protocol ${JSON.stringify(md.protocol)}, this coordinator speaks ${PROTOCOL_VERSION}`);
  const int = (key: string): number => {
    const x = md[key];
    if (x === undefined || !/^[0-9]{1,15}$/.test(x)) bad(`"${key}" must be a non-negative integer, got ${JSON.stringify(x)}`);
    return Number(x);
  };
  const str = (key: string): string => {
    const x = md[key];
    if (typeof x !== 'string' || x.length === 0 || x.length > 200) bad(`"${key}" must be a string of 1-200 characters`);
    return x!;
  };
  const loss = Number(md.loss);
  if (md.loss === undefined || md.loss.trim() === '' || !Number.isFinite(loss) || loss < 0) {
    throw new EncodingError('non-finite', `result metadata "loss" must be a finite number >= 0, got ${JSON.stringify(md.loss)}`);
  }
  const mode = md.mode ?? 'sync';
  if (mode !== training.mode) throw new EncodingError('wrong-mode', `result is for mode ${JSON.stringify(mode)}, this job trains in mode "${training.mode}"`);
  const encoding = md.encoding ?? 'f32';
  if (encoding !== training.up) throw new EncodingError('wrong-encoding', `result is encoded ${JSON.stringify(encoding)}, this job's results travel as "${training.up}"`);
  if (encoding === 'int8' && md.blockSize !== String(training.blockSize)) {
    throw new EncodingError('wrong-encoding', `result's int8 blocks hold ${JSON.stringify(md.blockSize)} values, this job's hold ${training.blockSize}`);
  }
  let bundle: string[] | undefined;
  if (md.bundle !== undefined) {
    bundle = md.bundle.split(',');
    if (bundle.length > MAX_TASKS_PER_REQUEST - 1 || bundle.some((id) => !/^[0-9a-zA-Z-]{1,64}$/.test(id))) {
      bad(`"bundle" must list at most ${MAX_TASKS_PER_REQUEST - 1} lease ids, comma-separated`);
    }
  }
  const weightsHash = md.weightsHash ?? '';
  if (!/^[0-9a-f]{64}$/.test(weightsHash)) bad(`"weightsHash" must be the 64 hex digits of the weights blob the result was computed on`);
  const meta: EncodedResultMeta = {
    taskId: str('taskId'), leaseId: str('leaseId'), weightsVersion: int('weightsVersion'), count: int('count'), loss, correct: int('correct'),
    mode: training.mode, encoding: training.up, weightsHash, ...(bundle ? { bundle } : {}),
  };
  if (meta.correct > meta.count) bad(`"correct" (${meta.correct}) exceeds "count" (${meta.count})`);
  const tensors = readEncoded(bytes, spans, shapes, training.up, training.blockSize, 'result');
  return { meta, tensors };
}
