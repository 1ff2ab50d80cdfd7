/**
 * A job's checkpoint files as its run goes on: written after the updates
 * the run asks for (checkpoint.ts's atomic format), the newest few kept plus
 * those a lost evaluation still needs, and a failed write logged and counted
 * rather than stopping the job.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { JobEvent } from '../../core/protocol/index.ts';
import { checkpointName, pruneCheckpoints, saveCheckpoint } from './checkpoint.ts';
import { unevaluatedPhaseEnds } from './evaluations.ts';
import type { ActiveRun, Perf } from './run.ts';
import type { Store } from './store.ts';

/** Checkpoint files of the jobs: writes params + velocities atomically and keeps the newest few. */
export class Checkpointer {
  constructor(
    private readonly dataDir: string,
    private readonly keep: number,
    private readonly store: Store,
    private readonly emit: (e: JobEvent) => void,
    private readonly log: (msg: string) => void,
    private readonly perf: Perf,
    /** phase ends get evaluated: their checkpoints stay until the evaluation is recorded (a restart evaluates from them) */
    private readonly evaluates: boolean,
  ) {}

  /** A job's checkpoint folder. */
  dirOf(jobId: string): string {
    return join(this.dataDir, 'jobs', jobId);
  }

  /**
   * A checkpoint that cannot be written (disk full, folder gone) must not stop
   * the job: the previous checkpoint stays valid (writes are atomic), training
   * goes on in memory, and the next checkpoint tries again. Counted in
   * `perf.checkpointFailures` and logged.
   */
  tryWrite(run: ActiveRun): void {
    try {
      this.write(run);
    } catch (e) {
      this.perf.checkpointFailures++;
      const last = this.store.job(run.id)?.checkpoint_iteration ?? 0;
      this.log(`checkpoint at iteration ${run.iteration} failed (${(e as Error).message}); training goes on, the last good checkpoint is at iteration ${last}`);
    }
  }

  /** Writes params + velocities for the next iteration atomically, then points the job row at it. */
  private write(run: ActiveRun): void {
    const dir = this.dirOf(run.id);
    mkdirSync(dir, { recursive: true });
    const path = join(dir, checkpointName(run.iteration));
    const published = run.mode.published;
    saveCheckpoint(path, { iteration: run.iteration, params: run.params, velocity: run.mode.velocity(run.optimizer), config: run.cfg, ...(published ? { published } : {}) });
    this.store.updateJob(run.id, { checkpoint_iteration: run.iteration, checkpoint_path: path });
    this.emit({ type: 'checkpoint', jobId: run.id, iteration: run.iteration });
    pruneCheckpoints(dir, this.keep, new Set(unevaluatedPhaseEnds(run, this.store, this.evaluates).map((e) => join(dir, checkpointName(e.iteration + 1)))));
  }
}
