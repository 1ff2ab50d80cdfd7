/**
 * A job's life in memory: activated (started, or resumed after the process
 * died, with the evaluations a crash lost run again), each iteration started
 * (tasks published) and completed (the update, metrics, checkpoint,
 * evaluation), and its end (done once the final evaluation is recorded, or
 * deactivated when cancelled). Holds the active run; the rest of the engine
 * reads it from here.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { JobConfig } from '../../core/model/config.ts';
import { phaseName } from '../../core/model/plan.ts';
import type { JobEvent } from '../../core/protocol/index.ts';
import type { BlobStore } from './blobs.ts';
import { checkable } from './checking.ts';
import { checkpointName, loadCheckpoint } from './checkpoint.ts';
import { DomainError } from './errors.ts';
import type { LeaseBook, NoLeaseReason } from './leasing.ts';
import type { P2PRounds } from './p2p-rounds.ts';
import type { Checkpointer } from './checkpointer.ts';
import { unevaluatedPhaseEnds, type Evaluator } from './evaluations.ts';
import { applyUpdate, closeRun, openRun, publishIteration, publishWeights, resultLimit, type ActiveRun, type Perf, type RunOptions } from './run.ts';
import type { JobRow, Store } from './store.ts';
import { jobRow } from './views.ts';

/** What a job's life needs of the engine, passed in explicitly. */
export interface LifecycleContext {
  readonly store: Store;
  readonly blobs: BlobStore;
  readonly leases: LeaseBook;
  readonly rounds: P2PRounds;
  readonly checkpoints: Checkpointer;
  readonly evaluations: Evaluator;
  readonly perf: Perf;
  /** how runs open (openRun); evaluating: whether the coordinator has a backend to evaluate on */
  readonly runOptions: RunOptions;
  readonly evaluating: boolean;
  readonly emit: (e: JobEvent) => void;
  readonly log: (msg: string) => void;
}

export class Lifecycle {
  private active: ActiveRun | null = null;
  /** for the active job, or the last one, so late results of a job that just ended still get `lease-expired` rather than `body-too-large` */
  private limit = resultLimit(null);

  constructor(private readonly ctx: LifecycleContext) {}

  /** The active run, or null. */
  get run(): ActiveRun | null {
    return this.active;
  }

  /** Largest result body accepted: the model's full gradient plus header slack. */
  get resultLimit(): number {
    return this.limit;
  }

  /**
   * Resumes the job that was running or paused when the process died. A job
   * that can no longer run (its config does not fit the data) goes to
   * `failed` with the reason, and the coordinator serves on; a data set that
   * cannot be read is the operator's to fix, and the error goes up.
   */
  async resume(j: JobRow): Promise<void> {
    try {
      await this.activate(j, true);
    } catch (e) {
      if (!(e instanceof DomainError)) throw e;
      this.ctx.store.updateJob(j.id, { state: 'failed', error: e.detail, finished_at: Date.now() });
      this.ctx.emit({ type: 'job', jobId: j.id, state: 'failed' });
      this.ctx.log(`job ${j.id} failed: ${e.detail}`);
    }
  }

  /** Loads a job into memory and publishes its current iteration. */
  async activate(j: JobRow, recovering: boolean): Promise<void> {
    const { store, log } = this.ctx;
    const cfg = JSON.parse(j.config) as JobConfig;
    const run = await openRun(j, cfg, this.ctx.blobs, this.ctx.runOptions);
    this.limit = resultLimit(cfg);
    if (recovering) {
      const dropped = store.dropFrom(j.id, run.iteration);
      log(`job ${j.id}: resuming at iteration ${run.iteration} from ${j.checkpoint_path ?? 'the seed'} (was at ${j.iteration}; dropped ${dropped.tasks} tasks, ${dropped.leases} leases after the checkpoint)`);
      this.evaluateMissed(run);
    }
    if (cfg.verification === 'verified' && !checkable(cfg)) log(`job ${j.id}: its training mode's results are not checked by recomputation yet (only synchronous float32 jobs are); counted unchecked`);
    this.active = run;
    store.updateJob(j.id, { iteration: run.iteration });
    if (run.iteration >= run.mode.total) {
      this.finishJob();
      return;
    }
    this.startIteration();
    this.ctx.emit({ type: 'job', jobId: j.id, state: jobRow(store, j.id).state });
  }

  /**
   * A crash between a phase-ending (or the final) update and its evaluation
   * lost the evaluation: evaluate now, from the checkpoint written right
   * after that update (kept until then, Checkpointer). Evaluations already
   * recorded are not repeated, so restarts are idempotent; the job becomes
   * done only after these (finishJob chains after them).
   */
  private evaluateMissed(run: ActiveRun): void {
    for (const e of unevaluatedPhaseEnds(run, this.ctx.store, this.ctx.evaluating)) {
      const path = join(this.ctx.checkpoints.dirOf(run.id), checkpointName(e.iteration + 1));
      if (!existsSync(path)) {
        this.ctx.log(`job ${run.id}: the evaluation after iteration ${e.iteration} (${e.phase}) was lost and its checkpoint is gone; it stays missing`);
        continue;
      }
      this.ctx.log(`job ${run.id}: evaluating iteration ${e.iteration} (${e.phase}) again from ${path}: the process stopped before its evaluation was stored`);
      this.ctx.evaluations.schedule(run, e.iteration, e.phase, loadCheckpoint(path, run.cfg).params);
    }
  }

  /** Takes the active run out of memory: its leases end, its blobs go. */
  deactivate(): void {
    const run = this.active;
    if (!run) return;
    this.ctx.leases.endJob(run.id);
    closeRun(run, this.ctx.blobs);
    this.active = null;
  }

  /** Creates the tasks of step t (publishing its weights when completeIteration has not). */
  private startIteration(): void {
    const run = this.active!;
    const it = publishIteration(run, this.ctx.blobs, this.ctx.store, this.ctx.perf);
    if (it.phaseStart) this.ctx.emit({ type: 'phase', jobId: run.id, phase: phaseName(it.phase), iteration: run.iteration });
    this.ctx.leases.forgetBefore(run.id, run.iteration);
    this.ctx.leases.pump();
    this.ctx.rounds.forgetBefore(run.id, run.iteration);
  }

  /** Applies the update once coverage is complete; records metrics; checkpoints; moves on. */
  completeIteration(): void {
    const run = this.active!;
    const { perf } = this.ctx;
    const { row, it, done } = applyUpdate(run, this.ctx.store, perf);
    // The next version, before the checkpoint keeps it and the evaluation reads the (at a phase end, snapped)
    // weights; with a training config also after the last step, as the in-process trainer does.
    if (!done || run.mode.training) publishWeights(run, this.ctx.blobs, perf, it);
    this.ctx.emit({ type: 'iteration', jobId: run.id, metrics: row });
    if (it.phaseEnd || done || run.iteration % run.cfg.checkpointEvery === 0) this.ctx.checkpoints.tryWrite(run);
    if (it.phaseEnd || done) this.ctx.evaluations.schedule(run, row.iteration, row.phase);
    if (done) {
      this.finishJob();
      return;
    }
    this.startIteration();
  }

  private finishJob(): void {
    const id = this.active!.id;
    const { store, leases } = this.ctx;
    // The job is done once its final evaluation is recorded.
    this.ctx.evaluations.then(() => {
      store.updateJob(id, { state: 'done', finished_at: Date.now() });
      this.ctx.emit({ type: 'job', jobId: id, state: 'done' });
      if (this.active?.id === id) this.deactivate();
      leases.pump();
    });
    leases.pump();
  }

  /** No task to lease now, why; null when the active run has tasks to give. */
  idleReason(): NoLeaseReason | null {
    const run = this.active;
    const { store } = this.ctx;
    if (!run) return store.jobs().some((j) => j.state === 'done') ? 'done' : 'no-job';
    if (store.job(run.id)!.state === 'paused') return 'paused';
    if (run.iteration >= run.mode.total || !run.it) return 'done';
    return null;
  }
}
