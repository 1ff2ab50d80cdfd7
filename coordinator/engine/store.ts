/**
 * The coordinator's durable state in SQLite (better-sqlite3, WAL): jobs,
 * the task and lease ledger, workers, per-iteration metrics, evaluations.
 * Weights and optimizer state live in checkpoint files beside it; the job
 * row names the last one. Every multi-row change is one transaction.
 */
import Database from 'better-sqlite3';
import type { JobState, WorkerRuntime } from '../../core/protocol/index.ts';

export interface JobRow {
  id: string;
  name: string;
  config: string;
  state: JobState;
  /** the iteration being computed (weights version) */
  iteration: number;
  total_iterations: number;
  /** training examples (after trainLimit) */
  train_count: number;
  checkpoint_iteration: number;
  checkpoint_path: string | null;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  late_results: number;
  rejected_results: number;
  error: string | null;
}

/** checking: answered, held until its recomputation's verdict */
export type TaskState = 'pending' | 'leased' | 'checking' | 'done';
/** discarded: answered, but the result failed its check and was thrown away */
export type LeaseState = 'active' | 'done' | 'expired' | 'returned' | 'discarded';

export interface TaskRow {
  id: string;
  job_id: string;
  iteration: number;
  partition: number;
  state: TaskState;
  lease_id: string | null;
  worker_id: string | null;
  attempts: number;
  count: number;
  done_at: number | null;
}

export interface LeaseRow {
  id: string;
  task_id: string;
  job_id: string;
  iteration: number;
  worker_id: string;
  issued_at: number;
  deadline: number;
  state: LeaseState;
  closed_at: number | null;
}

export interface WorkerRow {
  id: string;
  token_hash: string;
  name: string;
  runtime: WorkerRuntime;
  backend: string;
  adapter: string;
  state: 'active' | 'left' | 'lost';
  joined_at: number;
  last_seen: number;
  tasks_done: number;
  examples_done: number;
  examples_per_second: number;
  bytes_up: number;
  bytes_down: number;
  rejected: number;
  late: number;
}

export interface IterationRow {
  job_id: string;
  iteration: number;
  phase: string;
  loss: number;
  accuracy: number;
  count: number;
  tasks: number;
  seconds: number;
  bytes_in: number;
  bytes_out: number;
  done_at: number;
}

export interface EvaluationRow {
  job_id: string;
  iteration: number;
  phase: string;
  test_error: number;
  test_loss: number;
  at: number;
  /** the confusion matrix, JSON: counts[label * K + predicted] */
  confusion: string | null;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, config TEXT NOT NULL, state TEXT NOT NULL,
  iteration INTEGER NOT NULL DEFAULT 0, total_iterations INTEGER NOT NULL, train_count INTEGER NOT NULL DEFAULT 0,
  checkpoint_iteration INTEGER NOT NULL DEFAULT 0, checkpoint_path TEXT,
  created_at INTEGER NOT NULL, started_at INTEGER, finished_at INTEGER,
  late_results INTEGER NOT NULL DEFAULT 0, rejected_results INTEGER NOT NULL DEFAULT 0, error TEXT);
CREATE TABLE IF NOT EXISTS tasks (
  id TEXT PRIMARY KEY, job_id TEXT NOT NULL, iteration INTEGER NOT NULL, partition INTEGER NOT NULL,
  state TEXT NOT NULL, lease_id TEXT, worker_id TEXT, attempts INTEGER NOT NULL DEFAULT 0,
  count INTEGER NOT NULL DEFAULT 0, done_at INTEGER);
CREATE INDEX IF NOT EXISTS tasks_by_iteration ON tasks (job_id, iteration);
CREATE TABLE IF NOT EXISTS leases (
  id TEXT PRIMARY KEY, task_id TEXT NOT NULL, job_id TEXT NOT NULL, iteration INTEGER NOT NULL,
  worker_id TEXT NOT NULL, issued_at INTEGER NOT NULL, deadline INTEGER NOT NULL, state TEXT NOT NULL, closed_at INTEGER);
CREATE INDEX IF NOT EXISTS leases_by_task ON leases (task_id);
CREATE TABLE IF NOT EXISTS workers (
  id TEXT PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE, name TEXT NOT NULL, runtime TEXT NOT NULL,
  backend TEXT NOT NULL, adapter TEXT NOT NULL, state TEXT NOT NULL, joined_at INTEGER NOT NULL,
  last_seen INTEGER NOT NULL, tasks_done INTEGER NOT NULL DEFAULT 0, examples_done INTEGER NOT NULL DEFAULT 0,
  examples_per_second REAL NOT NULL DEFAULT 0, bytes_up INTEGER NOT NULL DEFAULT 0, bytes_down INTEGER NOT NULL DEFAULT 0,
  rejected INTEGER NOT NULL DEFAULT 0, late INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS iterations (
  job_id TEXT NOT NULL, iteration INTEGER NOT NULL, phase TEXT NOT NULL, loss REAL NOT NULL, accuracy REAL NOT NULL,
  count INTEGER NOT NULL, tasks INTEGER NOT NULL, seconds REAL NOT NULL, bytes_in INTEGER NOT NULL,
  bytes_out INTEGER NOT NULL, done_at INTEGER NOT NULL, PRIMARY KEY (job_id, iteration));
CREATE TABLE IF NOT EXISTS trust_records (worker_id TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trust_strikes (source TEXT NOT NULL, at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS evaluations (
  job_id TEXT NOT NULL, iteration INTEGER NOT NULL, phase TEXT NOT NULL, test_error REAL NOT NULL,
  test_loss REAL NOT NULL, at INTEGER NOT NULL, confusion TEXT);
`;

/** Typed statements over one database file (":memory:" for tests). */
export class Store {
  readonly db: Database.Database;

  constructor(path: string) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    // NORMAL in WAL mode: a power loss may drop the last transactions but never corrupts; checkpoints fsync themselves.
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(SCHEMA);
    // Databases made before evaluations kept their confusion matrix gain the column.
    const cols = this.db.prepare('PRAGMA table_info(evaluations)').all() as { name: string }[];
    if (!cols.some((c) => c.name === 'confusion')) this.db.exec('ALTER TABLE evaluations ADD COLUMN confusion TEXT');
  }

  private readonly statements = new Map<string, Database.Statement>();

  /** A prepared statement, cached by its SQL. */
  private q(sql: string): Database.Statement {
    let st = this.statements.get(sql);
    if (!st) {
      st = this.db.prepare(sql);
      this.statements.set(sql, st);
    }
    return st;
  }

  close(): void {
    this.db.close();
  }

  tx<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  // jobs
  insertJob(j: JobRow): void {
    this.q(
        `INSERT INTO jobs (id, name, config, state, iteration, total_iterations, train_count, checkpoint_iteration, checkpoint_path,
         created_at, started_at, finished_at, late_results, rejected_results, error)
         VALUES (@id, @name, @config, @state, @iteration, @total_iterations, @train_count, @checkpoint_iteration, @checkpoint_path,
         @created_at, @started_at, @finished_at, @late_results, @rejected_results, @error)`,
      )
      .run(j);
  }
  job(id: string): JobRow | undefined {
    return this.q('SELECT * FROM jobs WHERE id = ?').get(id) as JobRow | undefined;
  }
  jobs(): JobRow[] {
    return this.q('SELECT * FROM jobs ORDER BY created_at').all() as JobRow[];
  }
  updateJob(id: string, fields: Partial<Omit<JobRow, 'id'>>): void {
    const keys = Object.keys(fields);
    if (!keys.length) return;
    this.q(`UPDATE jobs SET ${keys.map((k) => `${k} = @${k}`).join(', ')} WHERE id = @id`).run({ ...fields, id });
  }
  bumpJob(id: string, column: 'late_results' | 'rejected_results'): void {
    this.q(`UPDATE jobs SET ${column} = ${column} + 1 WHERE id = ?`).run(id);
  }

  // tasks
  insertTask(t: TaskRow): void {
    this.q(
        `INSERT INTO tasks (id, job_id, iteration, partition, state, lease_id, worker_id, attempts, count, done_at)
         VALUES (@id, @job_id, @iteration, @partition, @state, @lease_id, @worker_id, @attempts, @count, @done_at)`,
      )
      .run(t);
  }
  updateTask(id: string, fields: Partial<Omit<TaskRow, 'id'>>): void {
    const keys = Object.keys(fields);
    this.q(`UPDATE tasks SET ${keys.map((k) => `${k} = @${k}`).join(', ')} WHERE id = @id`).run({ ...fields, id });
  }
  tasksOf(jobId: string, iteration?: number): TaskRow[] {
    return iteration === undefined
      ? (this.q('SELECT * FROM tasks WHERE job_id = ? ORDER BY iteration, partition').all(jobId) as TaskRow[])
      : (this.q('SELECT * FROM tasks WHERE job_id = ? AND iteration = ? ORDER BY partition').all(jobId, iteration) as TaskRow[]);
  }
  taskCounts(jobId: string): Record<TaskState, number> {
    const rows = this.q('SELECT state, COUNT(*) AS n FROM tasks WHERE job_id = ? GROUP BY state').all(jobId) as { state: TaskState; n: number }[];
    const out: Record<TaskState, number> = { pending: 0, leased: 0, checking: 0, done: 0 };
    for (const r of rows) out[r.state] = r.n;
    return out;
  }

  // leases
  insertLease(l: LeaseRow): void {
    this.q(
        `INSERT INTO leases (id, task_id, job_id, iteration, worker_id, issued_at, deadline, state, closed_at)
         VALUES (@id, @task_id, @job_id, @iteration, @worker_id, @issued_at, @deadline, @state, @closed_at)`,
      )
      .run(l);
  }
  lease(id: string): LeaseRow | undefined {
    return this.q('SELECT * FROM leases WHERE id = ?').get(id) as LeaseRow | undefined;
  }
  closeLease(id: string, state: LeaseState, at: number): void {
    this.q('UPDATE leases SET state = ?, closed_at = ? WHERE id = ?').run(state, at, id);
  }
  leasesOf(jobId: string): LeaseRow[] {
    return this.q('SELECT * FROM leases WHERE job_id = ? ORDER BY issued_at').all(jobId) as LeaseRow[];
  }
  /** Drops the ledger of iterations >= from (recomputed after a restart from a checkpoint). */
  dropFrom(jobId: string, from: number): { tasks: number; leases: number } {
    return this.tx(() => {
      const tasks = this.q('DELETE FROM tasks WHERE job_id = ? AND iteration >= ?').run(jobId, from).changes;
      const leases = this.q('DELETE FROM leases WHERE job_id = ? AND iteration >= ?').run(jobId, from).changes;
      this.q('DELETE FROM iterations WHERE job_id = ? AND iteration >= ?').run(jobId, from);
      this.q('DELETE FROM evaluations WHERE job_id = ? AND iteration >= ?').run(jobId, from);
      return { tasks, leases };
    });
  }

  // workers
  insertWorker(w: WorkerRow): void {
    this.q(
        `INSERT INTO workers (id, token_hash, name, runtime, backend, adapter, state, joined_at, last_seen, tasks_done,
         examples_done, examples_per_second, bytes_up, bytes_down, rejected, late)
         VALUES (@id, @token_hash, @name, @runtime, @backend, @adapter, @state, @joined_at, @last_seen, @tasks_done,
         @examples_done, @examples_per_second, @bytes_up, @bytes_down, @rejected, @late)`,
      )
      .run(w);
  }
  /** Forgets a worker (its ledger entries keep its id). */
  deleteWorker(id: string): void {
    this.q('DELETE FROM workers WHERE id = ?').run(id);
  }
  /** Trust records (coordinator/trust/reputation.ts), as JSON, so bans and probation survive a restart. */
  saveTrustRecord(workerId: string, record: string): void {
    this.q('INSERT INTO trust_records (worker_id, record) VALUES (?, ?) ON CONFLICT(worker_id) DO UPDATE SET record = excluded.record').run(workerId, record);
  }

  trustRecords(): string[] {
    return (this.q('SELECT record FROM trust_records').all() as { record: string }[]).map((r) => r.record);
  }

  /** A strike against a registration source at `at`; strikes older than `since` are dropped. */
  addTrustStrike(source: string, at: number, since: number): void {
    this.tx(() => {
      this.q('DELETE FROM trust_strikes WHERE at < ?').run(since);
      this.q('INSERT INTO trust_strikes (source, at) VALUES (?, ?)').run(source, at);
    });
  }

  clearTrustStrikes(source: string): void {
    this.q('DELETE FROM trust_strikes WHERE source = ?').run(source);
  }

  trustStrikes(): { source: string; at: number }[] {
    return this.q('SELECT source, at FROM trust_strikes ORDER BY at').all() as { source: string; at: number }[];
  }

  workers(): WorkerRow[] {
    return this.q('SELECT * FROM workers ORDER BY joined_at').all() as WorkerRow[];
  }
  updateWorker(id: string, fields: Partial<Omit<WorkerRow, 'id'>>): void {
    const keys = Object.keys(fields);
    if (!keys.length) return;
    this.q(`UPDATE workers SET ${keys.map((k) => `${k} = @${k}`).join(', ')} WHERE id = @id`).run({ ...fields, id });
  }

  // metrics
  insertIteration(r: IterationRow): void {
    this.q(
        `INSERT OR REPLACE INTO iterations (job_id, iteration, phase, loss, accuracy, count, tasks, seconds, bytes_in, bytes_out, done_at)
         VALUES (@job_id, @iteration, @phase, @loss, @accuracy, @count, @tasks, @seconds, @bytes_in, @bytes_out, @done_at)`,
      )
      .run(r);
  }
  iterations(jobId: string, since = 0): IterationRow[] {
    return this.q('SELECT * FROM iterations WHERE job_id = ? AND iteration >= ? ORDER BY iteration').all(jobId, since) as IterationRow[];
  }
  insertEvaluation(r: EvaluationRow): void {
    this.q('INSERT INTO evaluations (job_id, iteration, phase, test_error, test_loss, at, confusion) VALUES (@job_id, @iteration, @phase, @test_error, @test_loss, @at, @confusion)')
      .run(r);
  }
  evaluations(jobId: string): EvaluationRow[] {
    return this.q('SELECT * FROM evaluations WHERE job_id = ? ORDER BY iteration, at').all(jobId) as EvaluationRow[];
  }
}
