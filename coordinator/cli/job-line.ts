/**
 * `npm start`'s live line for the job, like the trainer's progress bar:
 *   job mnist-dbn  finetune  it 1234/2000 (61%)  812 ex/s  test error 1.96% (finetune)  ETA 02:13
 * On a terminal it is rewritten in place (other lines are printed above it
 * with `log`); on a pipe or a log file it is a plain line every few seconds.
 * Examples/s and the ETA are over the last WINDOW_MS of iterations.
 */
import type { IterationMetricsRow } from '../../core/protocol/index.ts';
import { formatSeconds } from './progress.ts';

export interface LineOut {
  readonly isTTY?: boolean;
  readonly columns?: number;
  write(s: string): unknown;
}

const WINDOW_MS = 20_000;

export class JobLine {
  private phase = '';
  private iteration: number;
  private evaluation: { phase: string; testError: number } | null = null;
  /** (time, iteration done, examples) of recent iterations, oldest first */
  private recent: { at: number; iteration: number; count: number }[] = [];
  private shown = false;
  private lastDraw = -Infinity;

  constructor(
    private readonly name: string,
    private readonly total: number,
    start: number,
    private readonly out: LineOut = process.stdout,
    private readonly now: () => number = () => performance.now(),
    /** on a pipe, at most one line this often */
    private readonly plainEveryMs = 5_000,
  ) {
    this.iteration = start;
    this.recent.push({ at: now(), iteration: start, count: 0 });
  }

  /** An iteration's update was applied. */
  iterationDone(m: IterationMetricsRow): void {
    const at = this.now();
    this.phase = m.phase;
    this.iteration = m.iteration + 1;
    this.recent.push({ at, iteration: this.iteration, count: m.count });
    while (this.recent.length > 2 && at - this.recent[0]!.at > WINDOW_MS) this.recent.shift();
    this.draw();
  }

  /** A test-error evaluation; shown with the phase it followed (during pre-training the output layer is untrained). */
  evaluated(phase: string, testError: number): void {
    this.evaluation = { phase, testError };
    this.draw(true);
  }

  /** The job's current line. */
  line(): string {
    const first = this.recent[0]!;
    const last = this.recent[this.recent.length - 1]!;
    const seconds = (last.at - first.at) / 1000;
    const examples = this.recent.slice(1).reduce((s, r) => s + r.count, 0);
    const itPerSecond = seconds > 0 ? (last.iteration - first.iteration) / seconds : 0;
    const percent = this.total > 0 ? Math.floor((100 * this.iteration) / this.total) : 100;
    const parts = [`job ${this.name}`];
    if (this.phase) parts.push(this.phase);
    parts.push(`it ${this.iteration}/${this.total} (${percent}%)`);
    parts.push(seconds > 0 ? `${(examples / seconds).toFixed(0)} ex/s` : '-- ex/s');
    if (this.evaluation) parts.push(`test error ${(this.evaluation.testError * 100).toFixed(2)}% (${this.evaluation.phase})`);
    parts.push(`ETA ${formatSeconds(itPerSecond > 0 ? (this.total - this.iteration) / itPerSecond : Number.NaN)}`);
    return parts.join('  ');
  }

  /** Prints a line above the live line. */
  log(text: string): void {
    if (this.out.isTTY && this.shown) this.out.write('\r\x1b[K');
    this.out.write(text.endsWith('\n') ? text : `${text}\n`);
    if (this.out.isTTY && this.shown) this.draw(true);
  }

  /** Ends the live line (a terminal keeps its last state). */
  finish(): void {
    if (this.out.isTTY && this.shown) this.out.write('\n');
    this.shown = false;
  }

  private draw(force = false): void {
    const t = this.now();
    const tty = this.out.isTTY === true;
    if (!force && t - this.lastDraw < (tty ? 200 : this.plainEveryMs)) return;
    if (!tty && force) return; // a plain log gets the periodic lines only
    this.lastDraw = t;
    const line = this.line();
    if (tty) {
      this.out.write(`\r${line.slice(0, (this.out.columns ?? 160) - 1)}\x1b[K`);
      this.shown = true;
    } else this.out.write(`${line}\n`);
  }
}
