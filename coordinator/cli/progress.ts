/**
 * A one-line progress bar with rate and ETA for terminals; on a pipe or a log
 * file it prints a plain line every few percent instead of redrawing.
 */
export class ProgressBar {
  private readonly start = performance.now();
  private lastPrint = 0;
  private lastPercent = -1;

  constructor(
    private readonly total: number,
    private readonly out: NodeJS.WriteStream = process.stderr,
    private readonly width = 28,
  ) {}

  update(done: number, label: string): void {
    const now = performance.now();
    const tty = this.out.isTTY === true;
    const percent = Math.floor((100 * done) / this.total);
    if (tty ? now - this.lastPrint < 100 && done < this.total : percent < this.lastPercent + 5 && done < this.total) return;
    this.lastPrint = now;
    this.lastPercent = percent;
    const elapsed = (now - this.start) / 1000;
    const rate = done / Math.max(elapsed, 1e-9);
    const eta = done > 0 ? (this.total - done) / rate : NaN;
    const fill = Math.round((this.width * done) / this.total);
    const bar = '#'.repeat(fill) + '-'.repeat(this.width - fill);
    const line = `[${bar}] ${String(percent).padStart(3)}% ${done}/${this.total} ${rate.toFixed(2)} it/s ` +
      `elapsed ${formatSeconds(elapsed)} ETA ${formatSeconds(eta)} ${label}`;
    if (tty) this.out.write(`\r${line.slice(0, (this.out.columns ?? 160) - 1)}\x1b[K`);
    else this.out.write(line + '\n');
  }

  /** Prints a line above the bar (the bar is redrawn on the next update). */
  log(line: string): void {
    if (this.out.isTTY) this.out.write(`\r\x1b[K${line}\n`);
    else this.out.write(line + '\n');
    this.lastPrint = 0;
  }

  finish(): void {
    if (this.out.isTTY) this.out.write('\n');
  }
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '--:--';
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = Math.floor(s % 60);
  const mm = String(m).padStart(2, '0');
  const ss = String(sec).padStart(2, '0');
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}
