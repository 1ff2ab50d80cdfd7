/**
 * A job's test-set evaluations: run one after another off the request path
 * (after phase ends and the last update), recorded with their confusion
 * matrices, and the phase ends whose evaluation a crash lost.
 */
import type { ComputeBackend } from '../../core/backend.ts';
import { cloneParams, type Params } from '../../core/model/params.ts';
import type { JobEvent } from '../../core/protocol/index.ts';
import { evaluate } from '../trainer.ts';
import type { ActiveRun } from './run.ts';
import type { Store } from './store.ts';
import { crashPoint } from './test-crash.ts';

/**
 * The phase ends (the last iteration of a phase) before run.iteration whose
 * evaluation is not recorded: a crash between the update and the evaluation
 * (which runs off the request path) lost them. Their weights are the
 * checkpoint written right after that update (checkpointName(iteration + 1)).
 */
export function unevaluatedPhaseEnds(run: ActiveRun, store: Store, evaluates: boolean): { iteration: number; phase: string }[] {
  if (!evaluates || run.test.count === 0) return [];
  const recorded = new Set(store.evaluations(run.id).map((e) => e.iteration));
  // in steps: plan iterations, or local-SGD rounds
  return run.mode.phases()
    .filter((p) => p.iterations > 0)
    .map((p) => ({ iteration: p.start + p.iterations - 1, phase: p.phase }))
    .filter((e) => e.iteration >= 0 && e.iteration + 1 <= run.iteration && !recorded.has(e.iteration));
}

/** Test-set evaluations, one after another off the request path (they yield between batches). */
export class Evaluator {
  private chain: Promise<void> = Promise.resolve();
  private backend: Promise<ComputeBackend> | null = null;
  private closed = false;

  constructor(
    private readonly make: (() => Promise<ComputeBackend>) | undefined,
    private readonly store: Store,
    private readonly emit: (e: JobEvent) => void,
    private readonly log: (msg: string) => void,
  ) {}

  /** Evaluates a snapshot of the run's weights after `iteration` (or `params`, the weights of then, on a restart). */
  schedule(run: ActiveRun, iteration: number, phase: string, weights?: Params): void {
    const make = this.make;
    if (!make || run.test.count === 0) return;
    const params = weights ?? cloneParams(run.params);
    this.chain = this.chain.then(async () => {
      try {
        this.backend ??= make();
        const backend = await this.backend;
        const ev = await evaluate(backend, run.cfg, params, run.test, 250);
        if (this.closed) return;
        crashPoint('before-evaluation', iteration);
        this.store.insertEvaluation({
          job_id: run.id, iteration, phase, test_error: ev.error, test_loss: ev.loss, at: Date.now(), confusion: JSON.stringify(Array.from(ev.confusion)),
        });
        this.emit({ type: 'evaluation', jobId: run.id, iteration, phase, testError: ev.error, testLoss: ev.loss });
        this.log(`job ${run.id}: after iteration ${iteration} (${phase}) test error ${(ev.error * 100).toFixed(2)}%`);
      } catch (e) {
        this.log(`job ${run.id}: evaluation failed: ${(e as Error).message}`);
      }
    });
  }

  /** Runs fn once the evaluations scheduled so far are recorded. */
  then(fn: () => void): void {
    this.chain = this.chain.then(fn);
  }

  /** Resolves when the evaluations (and what was chained after them) are done. */
  idle(): Promise<void> {
    return this.chain;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.chain.catch(() => undefined);
    if (this.backend) (await this.backend).dispose();
  }
}
