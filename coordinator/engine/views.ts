/**
 * What the admin API and the donate page see: a job's summary, its metrics,
 * the grid's public status. Read-only views of the store and the active run,
 * in the protocol's types (core/protocol/messages.ts), never a database row.
 */
import type { JobConfig } from '../../core/model/config.ts';
import { phaseName, TrainingPlan } from '../../core/model/plan.ts';
import { JobMode } from './modes.ts';
import type { JobChecking, JobMetrics, JobSummary, PublicStatus } from '../../core/protocol/index.ts';
import { DomainError } from './errors.ts';
import type { ActiveRun } from './run.ts';
import type { JobRow, Store } from './store.ts';

/** The job's row; `not-found` for an unknown id. */
export function jobRow(store: Store, id: string): JobRow {
  const j = store.job(id);
  if (!j) throw new DomainError('not-found', `no job "${id}"`);
  return j;
}

/** run: the active run if it is this job's; trust: its checking figures (coordinator/trust/). */
export function jobSummary(store: Store, id: string, run: ActiveRun | null, trust: (cfg: JobConfig) => JobChecking): JobSummary {
  const j = jobRow(store, id);
  const cfg = JSON.parse(j.config) as JobConfig;
  const plan = run?.plan ?? (j.train_count >= cfg.partitions ? new TrainingPlan(cfg, j.train_count) : null);
  const mode = run?.mode ?? (plan ? new JobMode(cfg, plan) : null);
  const phases: JobSummary['phases'] = mode ? mode.phases() : [];
  const phase = mode && j.iteration < mode.total ? phaseName(mode.at(j.iteration).phase) : '';
  const counts = store.taskCounts(id);
  const evals = store.evaluations(id);
  const last = evals[evals.length - 1];
  return {
    id,
    name: j.name,
    state: j.state,
    config: cfg,
    iteration: j.iteration,
    totalIterations: j.total_iterations,
    phase,
    phases,
    checkpointIteration: j.checkpoint_iteration,
    createdAt: j.created_at,
    startedAt: j.started_at,
    finishedAt: j.finished_at,
    // a task held for its check is out, like a leased one
    tasks: { done: counts.done, leased: counts.leased + counts.checking, pending: counts.pending },
    lateResults: j.late_results,
    rejectedResults: j.rejected_results,
    lastEvaluation: last ? { iteration: last.iteration, phase: last.phase, testError: last.test_error, testLoss: last.test_loss } : null,
    error: j.error,
    trust: trust(cfg),
  };
}

/** Iterations from `since` on, and every evaluation. */
export function jobMetrics(store: Store, id: string, since: number): JobMetrics {
  jobRow(store, id);
  return {
    iterations: store.iterations(id, since).map((r) => ({
      iteration: r.iteration,
      phase: r.phase,
      loss: r.loss,
      accuracy: r.accuracy,
      count: r.count,
      tasks: r.tasks,
      seconds: r.seconds,
      bytesIn: r.bytes_in,
      bytesOut: r.bytes_out,
    })),
    evaluations: store.evaluations(id).map((e) => ({
      iteration: e.iteration, phase: e.phase, testError: e.test_error, testLoss: e.test_loss,
      ...(e.confusion ? { confusion: JSON.parse(e.confusion) as number[] } : {}),
    })),
  };
}

export function publicStatus(store: Store, run: ActiveRun | null, workers: number): PublicStatus {
  let job: PublicStatus['job'] = null;
  if (run) {
    const j = store.job(run.id)!;
    job = { id: run.id, name: run.cfg.name, state: j.state, iteration: run.iteration, totalIterations: run.mode.total, phase: run.it ? phaseName(run.it.phase) : '' };
  }
  return { protocol: 1, job, workers };
}
