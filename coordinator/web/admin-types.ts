/**
 * The admin API's JSON answers as the admin page reads them (coordinator/API.md,
 * "Admin endpoints"). Kept to the fields the page uses.
 */
import type { JobConfig } from '../../client/core/model/config.ts';
import type { JobState } from '../../client/core/protocol.ts';

export interface JobSummary {
  readonly id: string;
  readonly name: string;
  readonly state: JobState;
  readonly config: JobConfig;
  readonly iteration: number;
  readonly totalIterations: number;
  readonly phase: string;
  readonly phases: readonly { readonly phase: string; readonly start: number; readonly iterations: number }[];
  readonly checkpointIteration: number;
  readonly createdAt: number;
  readonly startedAt: number | null;
  readonly finishedAt: number | null;
  readonly tasks: { readonly done: number; readonly leased: number; readonly pending: number };
  readonly lateResults: number;
  readonly rejectedResults: number;
  readonly lastEvaluation: { readonly iteration: number; readonly testError: number; readonly testLoss: number } | null;
}

export interface WorkerRow {
  readonly id: string;
  readonly name: string;
  readonly runtime: string;
  readonly backend: string;
  readonly adapter: string;
  readonly state: 'active' | 'left' | 'lost';
  readonly tasksDone: number;
  readonly examplesDone: number;
  readonly examplesPerSecond: number;
  readonly bytesUp: number;
  readonly bytesDown: number;
  readonly rejected: number;
  readonly late: number;
  readonly joinedAt: number;
  readonly lastSeen: number;
}

/** One test evaluation; `confusion` (K x K, [true * K + predicted]) on the ones that carry it. */
export interface EvaluationPoint {
  readonly iteration: number;
  readonly phase: string;
  readonly testError: number;
  readonly testLoss: number;
  readonly confusion?: readonly number[];
}
