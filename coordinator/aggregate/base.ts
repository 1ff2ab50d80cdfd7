/**
 * Aggregation of task results within one iteration. Every partial aggregate
 * carries the exact set of tasks it covers; combining two partials whose sets
 * overlap is an error, so a task is never counted twice, and the sum is only
 * handed out when the coverage equals the iteration's task set, so none is
 * lost. Implementations: flat (one running sum) and tree (fixed fan-in).
 * Peer-to-peer aggregation among browsers will be a third.
 */

/** The sums of one or more tasks (core/task.ts's TaskResult). The arrays are owned by the aggregate once added. */
export type Sums = TaskResult;

export interface PartialAggregate extends TaskResult {
  loss: number;
  correct: number;
  count: number;
  /** exactly the task ids summed in */
  readonly covers: Set<string>;
}

export type AddOutcome = 'added' | 'duplicate' | 'unknown';

export interface Aggregator {
  readonly kind: string;
  /** Starts an iteration that expects exactly these tasks; drops anything held. */
  begin(tasks: readonly string[]): void;
  /**
   * Adds the sums of one task, or of several summed by one worker (taking
   * ownership of the arrays); 'duplicate' (a task already covered, or named
   * twice) and 'unknown' change nothing.
   */
  add(tasks: string | readonly string[], sums: Sums): AddOutcome;
  /** Tasks covered so far. */
  readonly covered: number;
  /** Tasks the iteration expects. */
  readonly expected: number;
  has(taskId: string): boolean;
  complete(): boolean;
  /** The total; throws unless complete. Its `covers` equals the expected set. */
  finish(): PartialAggregate;
  /** Bytes of gradient data summed so far (for throughput figures). */
  readonly bytesSummed: number;
  /**
   * Plans the memory of a whole job: `tasks` results per iteration whose
   * tensors take at most maxBlockFloats floats together (each padded to 4),
   * read through `slots` receive slots of `slotBytes`. Optional to call.
   */
  reserve(maxBlockFloats: number, tasks: number, slots: number, slotBytes: number): void;
  /** Memory to read a result body of `bytes` into, so adding it needs no copy; null: read it into JS memory. */
  acquireSlot(bytes: number): ReceiveSlot | null;
}

import type { TaskResult } from '../../core/task.ts';
import { jsSummer, type ReceiveSlot, type Summer } from './simd.ts';

export class AggregationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AggregationError';
  }
}

export function leaf(tasks: string | readonly string[], s: Sums): PartialAggregate {
  return { grads: s.grads, loss: s.loss, correct: s.correct, count: s.count, covers: new Set(typeof tasks === 'string' ? [tasks] : tasks) };
}

/** Shared bookkeeping: the expected set and which tasks were added. */
export abstract class BaseAggregator implements Aggregator {
  abstract readonly kind: string;
  protected expectedSet = new Set<string>();
  protected seen = new Set<string>();
  bytesSummed = 0;

  /** summer: how tensors are added (the plain loop, or WebAssembly SIMD; the same bits either way) */
  constructor(protected readonly summer: Summer = jsSummer) {}

  begin(tasks: readonly string[]): void {
    this.expectedSet = new Set(tasks);
    if (this.expectedSet.size !== tasks.length) throw new AggregationError('begin: task ids repeat');
    this.seen = new Set();
    this.reset();
    this.summer.begin(this.maxTargets(tasks.length));
  }

  /** a += b through the summer (b consumed); counts the bytes. */
  protected merge(a: PartialAggregate, b: PartialAggregate): void {
    this.bytesSummed += this.summer.merge(a, b);
  }

  /** The most partials that are merge targets at once while n tasks aggregate. */
  abstract maxTargets(n: number): number;

  reserve(maxBlockFloats: number, tasks: number, slots: number, slotBytes: number): void {
    this.summer.reserve?.(maxBlockFloats, this.maxTargets(tasks), slots, slotBytes);
  }

  acquireSlot(bytes: number): ReceiveSlot | null {
    return this.summer.acquireSlot?.(bytes) ?? null;
  }

  get covered(): number {
    return this.seen.size;
  }

  get expected(): number {
    return this.expectedSet.size;
  }

  has(taskId: string): boolean {
    return this.seen.has(taskId);
  }

  complete(): boolean {
    return this.seen.size === this.expectedSet.size;
  }

  add(tasks: string | readonly string[], sums: Sums): AddOutcome {
    const ids = typeof tasks === 'string' ? [tasks] : tasks;
    if (ids.length === 0 || ids.some((t) => !this.expectedSet.has(t))) return 'unknown';
    if (new Set(ids).size !== ids.length || ids.some((t) => this.seen.has(t))) return 'duplicate';
    for (const t of ids) this.seen.add(t);
    this.push(leaf(ids, sums));
    return 'added';
  }

  finish(): PartialAggregate {
    if (!this.complete()) {
      throw new AggregationError(`iteration incomplete: ${this.seen.size} of ${this.expectedSet.size} tasks covered`);
    }
    const total = this.drain();
    if (total.covers.size !== this.expectedSet.size || [...this.expectedSet].some((t) => !total.covers.has(t))) {
      throw new AggregationError(`coverage ${total.covers.size} differs from the ${this.expectedSet.size} expected tasks`);
    }
    return total;
  }

  protected abstract reset(): void;
  protected abstract push(p: PartialAggregate): void;
  /** Everything combined into one partial (only called when complete). */
  protected abstract drain(): PartialAggregate;
}

