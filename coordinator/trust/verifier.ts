/**
 * Verification by recomputation, the coordinator's side: which results to
 * check (adaptive replication through reputation.ts), the recomputation on
 * the coordinator's own CPU backend (a task's result is a pure function of
 * weights, examples and seed, so the coordinator, which is trusted, gets
 * the honest numbers up to rounding), the verdict (compare.ts) and the
 * record it leaves. No HTTP, no ledger: coordinator.ts holds a checked
 * result out of the aggregation until the verdict, then counts it (agreed)
 * or discards it and re-issues its tasks to another worker (failed).
 *
 * The coordinator's recomputation is the second opinion and, being exact
 * and trusted, also the deciding one: a disagreement needs no third.
 */
import type { ComputeBackend } from '../../core/backend.ts';
import type { JobConfig } from '../../core/model/config.ts';
import type { Params } from '../../core/model/params.ts';
import { phaseName, type Phase } from '../../core/model/plan.ts';
import { computeTasks, type ExampleBatch, type TaskResult } from '../../core/task.ts';
import { compareResults, DEFAULT_TOLERANCE, type Comparison, type Comparable, type Tolerance } from './compare.ts';
import { createReputation, DEFAULT_TRUST_POLICY, type Reputation, type TrustPolicy, type TrustRecord, type TrustStore } from './reputation.ts';

export interface VerifierOptions {
  readonly policy?: TrustPolicy;
  readonly tolerance?: Tolerance;
  /** the backend that recomputes (the coordinator's CPU backend) */
  readonly backend: () => Promise<ComputeBackend>;
  /** uniform draws in [0, 1) for the sampling (tests pass a seeded one) */
  readonly random?: () => number;
  /** where trust records and strikes outlive the process */
  readonly store?: TrustStore;
}

/** What the job's checking cost: examples recomputed against examples accepted. */
export interface CheckingFigures {
  /** results checked, and how many of them failed */
  checks: number;
  failures: number;
  /** examples recomputed by the coordinator */
  checkedExamples: number;
  /** examples of results counted (checked or not) */
  acceptedExamples: number;
  /** seconds the coordinator spent recomputing */
  checkSeconds: number;
}

export interface Verdict {
  readonly comparison: Comparison;
  readonly record: TrustRecord;
  /** the worker was banned by this verdict */
  readonly banned: boolean;
}

export class Verifier {
  readonly reputation: Reputation;
  readonly tolerance: Tolerance;
  private backendP: Promise<ComputeBackend> | null = null;
  private chain: Promise<unknown> = Promise.resolve();
  private readonly random: () => number;
  /** per job */
  private readonly figures = new Map<string, CheckingFigures>();

  constructor(private readonly opts: VerifierOptions) {
    this.reputation = createReputation(opts.policy ?? DEFAULT_TRUST_POLICY, opts.store);
    this.tolerance = opts.tolerance ?? DEFAULT_TOLERANCE;
    this.random = opts.random ?? Math.random;
  }

  figuresOf(jobId: string): CheckingFigures {
    let f = this.figures.get(jobId);
    if (!f) this.figures.set(jobId, (f = { checks: 0, failures: 0, checkedExamples: 0, acceptedExamples: 0, checkSeconds: 0 }));
    return f;
  }

  /**
   * Whether this result of the worker, for a task of this phase, is checked.
   * A worker without a record (registered before records were kept) gets a
   * fresh one, from an unknown source.
   */
  shouldCheck(workerId: string, phase: Phase): boolean {
    if (!this.reputation.record(workerId)) this.reputation.register(workerId, 'unknown', Date.now());
    return this.reputation.shouldCheck(workerId, this.random(), phaseName(phase));
  }

  isBanned(workerId: string): boolean {
    return this.reputation.record(workerId)?.banned ?? false;
  }

  /**
   * Recomputes the tasks (summed in the order given, as a worker sums a
   * bundle), one at a time on the coordinator's backend.
   */
  recompute(cfg: JobConfig, params: Params, phase: Phase, iteration: number, batches: readonly ExampleBatch[]): Promise<TaskResult> {
    const run = async (): Promise<TaskResult> => {
      this.backendP ??= this.opts.backend();
      const backend = await this.backendP;
      // the tasks summed in order, one at a time, as a worker's loop computes a bundle (core/task.ts)
      return await computeTasks(backend, cfg, params, batches.map(() => ({ phase, iteration, seed: cfg.seed })), batches);
    };
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => undefined);
    return p;
  }

  /** The verdict on an uploaded result against the recomputation; updates the worker's record and the job's figures. */
  judge(jobId: string, workerId: string, phase: Phase, uploaded: Comparable, recomputed: Comparable, seconds: number, now: number): Verdict {
    const comparison = compareResults(uploaded, recomputed, phase.kind, this.tolerance);
    const f = this.figuresOf(jobId);
    f.checks++;
    f.checkedExamples += recomputed.count;
    f.checkSeconds += seconds;
    if (!this.reputation.record(workerId)) this.reputation.register(workerId, 'unknown', now);
    const before = this.isBanned(workerId);
    let record: TrustRecord;
    if (comparison.agree) record = this.reputation.agreed(workerId, phaseName(phase));
    else {
      f.failures++;
      record = this.reputation.failed(workerId, now);
    }
    return { comparison, record, banned: !before && record.banned };
  }

  /** A result counted toward an update (checked or not). */
  counted(jobId: string, examples: number): void {
    this.figuresOf(jobId).acceptedExamples += examples;
  }

  async dispose(): Promise<void> {
    await this.chain.catch(() => undefined);
    if (this.backendP) (await this.backendP).dispose();
  }
}
