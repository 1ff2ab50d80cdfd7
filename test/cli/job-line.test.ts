/** npm start's live job line (coordinator/cli/job-line.ts) on a fake clock and fake terminals. */
import { describe, expect, it } from 'vitest';
import type { IterationMetricsRow } from '../../core/protocol/index.ts';
import { JobLine } from '../../coordinator/cli/job-line.ts';

const row = (iteration: number, phase: string, count = 600): IterationMetricsRow => ({ iteration, phase, loss: 1, accuracy: 0, count, tasks: 6, seconds: 0.5, bytesIn: 0, bytesOut: 0 });

function rig(tty: boolean) {
  let now = 0;
  const written: string[] = [];
  const line = new JobLine('mnist-dbn', 100, 0, { isTTY: tty, columns: 200, write: (s: string) => written.push(s) }, () => now, 5_000);
  return { line, written, advance: (ms: number) => void (now += ms) };
}

describe('JobLine', () => {
  it('shows the phase, iteration of total, examples/s, the last test error with its phase, and the ETA', () => {
    const { line, advance } = rig(true);
    expect(line.line()).toBe('job mnist-dbn  it 0/100 (0%)  -- ex/s  ETA --:--');
    for (let i = 0; i < 10; i++) {
      advance(500);
      line.iterationDone(row(i, 'pretrain layer 0'));
    }
    // 10 iterations of 600 examples in 5 s: 1200 ex/s, 2 it/s, 90 left: 45 s
    expect(line.line()).toBe('job mnist-dbn  pretrain layer 0  it 10/100 (10%)  1200 ex/s  ETA 00:45');
    line.evaluated('pretrain layer 0', 0.9026);
    expect(line.line()).toContain('test error 90.26% (pretrain layer 0)');
  });

  it('the rate is over the recent window, so a slow start does not skew the ETA for long', () => {
    const { line, advance } = rig(false);
    advance(60_000);
    line.iterationDone(row(0, 'finetune')); // a minute for the first (data loading)
    for (let i = 1; i < 50; i++) {
      advance(100);
      line.iterationDone(row(i, 'finetune'));
    }
    expect(line.line()).toMatch(/it 50\/100 \(50%\)  6000 ex\/s  ETA 00:05$/);
  });

  it('on a terminal: redrawn in place, at most every 200 ms; logged lines print above it', () => {
    const { line, written, advance } = rig(true);
    advance(300);
    line.iterationDone(row(0, 'finetune'));
    advance(50);
    line.iterationDone(row(1, 'finetune')); // too soon: not drawn
    expect(written).toHaveLength(1);
    expect(written[0]).toMatch(/^\r.*it 1\/100.*\x1b\[K$/);
    line.log('[worker 1] 3 tasks');
    expect(written.slice(1)).toEqual(['\r\x1b[K', '[worker 1] 3 tasks\n', expect.stringMatching(/^\r.*it 2\/100/)]);
    line.finish();
    expect(written.at(-1)).toBe('\n');
  });

  it('on a pipe: a plain line every few seconds, never a carriage return', () => {
    const { line, written, advance } = rig(false);
    for (let i = 0; i < 100; i++) {
      advance(100); // 10 s in all
      line.iterationDone(row(i, 'finetune'));
    }
    line.log('[main] something');
    line.finish();
    const plain = written.filter((w) => w.startsWith('job '));
    expect(plain.length).toBeGreaterThanOrEqual(1);
    expect(plain.length).toBeLessThanOrEqual(3);
    expect(written.join('')).not.toMatch(/\r|\x1b/);
    expect(written).toContain('[main] something\n');
  });
});
