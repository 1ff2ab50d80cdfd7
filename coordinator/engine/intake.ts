/**
 * Result intake, as a pure check: does this upload answer open leases of
 * this worker, for the current iteration, with the right weights version,
 * example count, tensors, finite values and a gradient norm within bound?
 * validateResult returns the decoded result or a typed refusal and changes
 * nothing; the coordinator applies what follows (counters, expiring overdue
 * leases, aggregation).
 */
import { decodeResult, ProtocolError, type ErrorCode, type ResultMeta } from '../../core/protocol/index.ts';
import type { JobMode, ModeResult } from './modes.ts';
import type { TaskSlot } from './run.ts';

/** A lease as the ledger keeps it. */
export interface LeaseInfo {
  readonly id: string;
  readonly jobId: string;
  readonly taskId: string;
  readonly partition: number;
  readonly iteration: number;
  readonly workerId: string;
  readonly deadline: number;
  /** discarded: answered, but its result failed its check (coordinator/trust/) */
  state: 'active' | 'done' | 'expired' | 'returned' | 'discarded';
}

/** What intake needs to know of the active iteration. */
export interface IterationView {
  readonly id: string;
  readonly iteration: number;
  readonly slots: readonly TaskSlot[];
  readonly gradShapes: ReadonlyMap<string, readonly number[]>;
  /** the job's mode: how a result body decodes (JobMode.decode), and whether it must name the published weights; absent: the original float32 result */
  readonly mode?: Pick<JobMode, 'decode' | 'training'>;
  /** the published weights of the iteration */
  readonly weights?: { readonly hash: string } | null;
  /** the largest loss one example can report in this iteration (metric-bounds.ts); absent: no bound */
  readonly lossBoundPerExample?: number;
}

export interface IntakeInput {
  readonly workerId: string;
  /** the lease the upload is for */
  readonly lease: LeaseInfo;
  /** another lease by id (a bundle's), undefined if it was never issued */
  readonly lookup: (leaseId: string) => LeaseInfo | undefined;
  /** the active iteration; null when no job is active */
  readonly run: IterationView | null;
  readonly body: Uint8Array;
  /** a result's gradient L2 norm may not exceed this times its example count */
  readonly normBoundPerExample: number;
  readonly now: number;
  /** may this upload answer lease x? default: x was issued to workerId (a tree's partial: p2p-plan.ts's claimable) */
  readonly owns?: (x: LeaseInfo) => boolean;
}

export interface Answered {
  readonly lease: LeaseInfo;
  readonly slot: TaskSlot;
}

export type Intake =
  | {
      readonly ok: true;
      readonly meta: ResultMeta;
      readonly grads: Map<string, Float32Array>;
      /** the leases the result answers (the upload's first, then its bundle) and their task slots */
      readonly answers: readonly Answered[];
      /** active leases past their deadline that were met on the way: the caller expires them */
      readonly overdue: readonly LeaseInfo[];
    }
  | Refusal;

export interface Refusal {
  readonly ok: false;
  readonly code: ErrorCode;
  readonly detail: string;
  /** a late result (counted as late, not as rejected) */
  readonly late: boolean;
  readonly overdue: readonly LeaseInfo[];
}

/**
 * The open task slot a lease of this worker answers, or why it answers none
 * (foreign, answered, expired, superseded, of an iteration that is over).
 * Needs only the lease id and the worker, so it runs before an upload's body
 * is read, and again (validateResult) once it has arrived. An active lease
 * past its deadline is pushed to `overdue` for the caller to expire.
 */
export function openSlot(workerId: string, x: LeaseInfo, run: IterationView | null, now: number, overdue: LeaseInfo[], owns?: (x: LeaseInfo) => boolean): TaskSlot | Refusal {
  const refuse = (code: ErrorCode, detail: string, late = false): Refusal => ({ ok: false, code, detail, late, overdue });
  // owns: a tree's partial may answer leases of the uploader's subtree (p2p-plan.ts's claimable)
  if (!(owns ? owns(x) : x.workerId === workerId)) return refuse(owns ? 'coverage-claim' : 'foreign-lease', `lease ${x.id} was issued to another worker${owns ? ", outside the uploader's subtree" : ''}`);
  if (x.state === 'done') return refuse('duplicate-result', `lease ${x.id} was already answered; its result counts once`);
  const late = (why: string): Refusal => refuse('lease-expired', `lease ${x.id} ${why}; the result was dropped, lease a new task`, true);
  if (x.state === 'active' && now > x.deadline) {
    overdue.push(x);
    return late('expired before the result came');
  }
  if (x.state !== 'active') return late(`${x.state === 'returned' ? 'was returned' : 'expired'} before the result came`);
  if (!run || run.id !== x.jobId || run.iteration !== x.iteration) return late('belongs to an iteration that is over');
  const slot = run.slots[x.partition]!;
  if (slot.state === 'done' || slot.leaseId !== x.id) return late('was superseded: the task was re-issued');
  return slot;
}

/** Checks an upload completely; see the file's comment. */
export function validateResult(input: IntakeInput): Intake {
  const { workerId, lease: l, run, now } = input;
  const overdue: LeaseInfo[] = [];
  const refuse = (code: ErrorCode, detail: string, late = false): Refusal => ({ ok: false, code, detail, late, overdue });
  const first = openSlot(workerId, l, run, now, overdue, input.owns);
  if ('ok' in first) return first;

  let decoded: ModeResult;
  try {
    // the job's mode and encoding (JobMode.decode); without one, the original float32 result
    if (run!.mode) decoded = run!.mode.decode(input.body, run!.gradShapes);
    else {
      const r = decodeResult(input.body, run!.gradShapes);
      decoded = { meta: r.meta, tensors: r.grads };
    }
  } catch (e) {
    if (e instanceof ProtocolError) return refuse(e.code, e.message);
    throw e;
  }
  const { meta, tensors: grads } = decoded;
  if (meta.leaseId !== l.id || meta.taskId !== l.taskId) {
    return refuse('malformed-result', `metadata names lease ${meta.leaseId} / task ${meta.taskId}, the upload is for lease ${l.id} / task ${l.taskId}`);
  }
  // A bundle: the other leases of this iteration the result sums in (LeaseResponse.more).
  const ids = meta.bundle ?? [];
  if (new Set([l.id, ...ids]).size !== ids.length + 1) return refuse('malformed-result', `"bundle" names a lease twice`);
  const answers: Answered[] = [{ lease: l, slot: first }];
  for (const id of ids) {
    const x = input.lookup(id);
    if (!x) return refuse('unknown-lease', `"bundle" names lease ${id}, which was never issued`);
    const slot = openSlot(workerId, x, run, now, overdue, input.owns);
    if ('ok' in slot) return slot;
    answers.push({ lease: x, slot });
  }
  if (meta.weightsVersion !== l.iteration) {
    return refuse('stale-weights', `result computed on weights version ${meta.weightsVersion}, the lease is for version ${l.iteration}`);
  }
  if (run!.mode?.training && meta.weightsHash !== run!.weights?.hash) {
    return refuse('unknown-version', `result computed on weights ${meta.weightsHash}, which this coordinator did not publish as version ${l.iteration} (${run!.weights?.hash}): apply the lease's deltas only from a version they name, else download the whole weights`);
  }
  const expected = answers.reduce((n, x) => n + x.slot.expected, 0);
  if (meta.count !== expected) {
    return refuse('count-mismatch', `result counts ${meta.count} examples, the ${answers.length > 1 ? `${answers.length} tasks sample` : 'task samples'} ${expected}`);
  }
  const lossBound = (run!.lossBoundPerExample ?? Infinity) * meta.count;
  if (meta.count > 0 && meta.loss > lossBound) {
    return refuse('out-of-range', `"loss" ${meta.loss} exceeds ${lossBound.toPrecision(6)}, the most ${meta.count} examples can lose in this phase with these weights`);
  }
  const bad = checkNorm(grads, input.normBoundPerExample * Math.max(1, meta.count), meta.count);
  if (bad) return refuse(bad.code, bad.detail);
  return { ok: true, meta, grads, answers, overdue };
}

/** Every value finite and the L2 norm of all gradients within `bound`; else the refusal's code and detail. */
export function checkNorm(grads: ReadonlyMap<string, Float32Array>, bound: number, count: number): { code: 'non-finite' | 'norm-bound'; detail: string } | null {
  let sq = 0;
  for (const [name, g] of grads) {
    sq += sumSquares(g);
    if (!Number.isFinite(sq)) {
      for (let i = 0; i < g.length; i++) {
        if (!Number.isFinite(g[i]!)) return { code: 'non-finite', detail: `gradient "${name}" holds ${g[i]} at index ${i}` };
      }
    }
  }
  const norm = Math.sqrt(sq);
  if (norm > bound) return { code: 'norm-bound', detail: `gradient L2 norm ${norm.toExponential(3)} exceeds the bound ${bound.toExponential(3)} for ${count} examples` };
  return null;
}

/** Sum of squares (NaN or Infinity when any value is not finite), with four accumulators. */
export function sumSquares(g: Float32Array): number {
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  const n = g.length;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const a = g[i]!, b = g[i + 1]!, c = g[i + 2]!, d = g[i + 3]!;
    s0 += a * a;
    s1 += b * b;
    s2 += c * c;
    s3 += d * d;
  }
  for (; i < n; i++) s0 += g[i]! * g[i]!;
  return s0 + s1 + s2 + s3;
}
