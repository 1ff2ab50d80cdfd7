/**
 * The admin page's charts (uPlot): reconstruction error by layer, fine-tuning
 * loss and train error, test error, and bytes per example, against iteration
 * or seconds of training. A chart is rebuilt only when its series or x axis
 * change; otherwise its data is replaced.
 */
import uPlot from 'uplot';
import type { IterationMetricsRow } from '../../core/protocol/index.ts';
import type { Coordinator } from '../engine/coordinator.ts';
import { $ } from './admin-dom.ts';

/** One test evaluation as the metrics endpoint answers it; each carries its confusion matrix (K x K, [true * K + predicted]). */
export type EvaluationPoint = ReturnType<Coordinator['metrics']>['evaluations'][number] & { readonly confusion?: readonly number[] };

/** The x axis: iteration number, or cumulative seconds of training. */
export type XMode = 'iteration' | 'time';

const COLORS = ['#2f6fed', '#e8590c', '#1f9d55', '#9c36b5', '#c2255c', '#0b7285'];
const charts = new Map<string, uPlot>();

/** A y range from the data, padded, and kept within [lo, hi] (a percentage stays within 0-100). */
function clampedRange(lo: number, hi: number): uPlot.Range.Function {
  return (_u, min, max) => {
    if (min == null || max == null || !Number.isFinite(min) || !Number.isFinite(max)) return [lo, hi];
    const pad = Math.max((max - min) * 0.1, (hi - lo) * 0.01);
    return [Math.max(lo, min - pad), Math.min(hi, max + pad)];
  };
}

function chart(id: string, series: { label: string; color: string; points?: boolean; scale?: string }[], yLabel: string, xMode: XMode, yRange?: uPlot.Range.Function): uPlot {
  const el = $(id);
  const existing = charts.get(id);
  const key = series.map((s) => s.label).join('|') + xMode;
  if (existing && el.dataset.key === key) return existing;
  existing?.destroy();
  el.dataset.key = key;
  const opts: uPlot.Options = {
    width: Math.max(200, el.clientWidth),
    height: 220,
    legend: { show: true },
    cursor: { drag: { x: true, y: false } },
    scales: { x: { time: false }, ...(yRange ? { y: { range: yRange } } : {}) },
    axes: [
      { label: xMode === 'iteration' ? 'iteration' : 'seconds of training', labelSize: 18, size: 36, stroke: '#677185', grid: { stroke: '#eef0f4' } },
      { label: yLabel, labelSize: 18, size: 52, stroke: '#677185', grid: { stroke: '#eef0f4' } },
    ],
    series: [
      { label: xMode === 'iteration' ? 'iteration' : 's' },
      ...series.map((s) => ({
        label: s.label,
        stroke: s.color,
        width: 1.5,
        spanGaps: false,
        points: { show: s.points ?? false, size: 6, fill: s.color },
      })),
    ],
  };
  const u = new uPlot(opts, [[]], el);
  charts.set(id, u);
  return u;
}

/** Draws the four charts (reconstruction, fine-tuning loss, test error, bytes per example) from the metrics so far. */
export function renderCharts(rows: readonly IterationMetricsRow[], evals: readonly EvaluationPoint[], xMode: XMode): void {
  // x of each iteration: its number, or cumulative seconds of training when it ended
  const xOf = new Map<number, number>();
  let t = 0;
  for (const r of rows) {
    t += r.seconds;
    xOf.set(r.iteration, xMode === 'iteration' ? r.iteration : t);
  }
  const xs = rows.map((r) => xOf.get(r.iteration)!);

  const layers = [...new Set(rows.filter((r) => r.phase.startsWith('pretrain')).map((r) => r.phase))];
  const recon = chart('chart-recon', (layers.length ? layers : ['pretrain layer 0']).map((p, i) => ({ label: p.replace('pretrain ', ''), color: COLORS[i % COLORS.length]! })), 'error / example', xMode);
  recon.setData([xs, ...(layers.length ? layers : ['pretrain layer 0']).map((p) => rows.map((r) => (r.phase === p ? r.loss : null)))] as uPlot.AlignedData);

  const loss = chart('chart-loss', [
    { label: 'cross-entropy', color: COLORS[0]! },
    { label: 'train error', color: COLORS[1]! },
  ], 'per example', xMode);
  loss.setData([xs, rows.map((r) => (r.phase === 'finetune' ? r.loss : null)), rows.map((r) => (r.phase === 'finetune' ? 1 - r.accuracy : null))] as uPlot.AlignedData);

  const ex = evals.map((e) => (xMode === 'iteration' ? e.iteration : xOf.get(e.iteration) ?? xOf.get(e.iteration - 1) ?? t));
  // Pre-training evaluations (output layer untrained, ~90%) are a series of their own, so fine-tuning's stands apart.
  const test = chart(
    'chart-test',
    [
      { label: 'fine-tuning', color: COLORS[2]!, points: true },
      { label: 'after pre-training (output untrained)', color: '#adb5bd', points: true },
    ],
    'test error %',
    xMode,
    clampedRange(0, 100),
  );
  const pct = (keep: (phase: string) => boolean) => evals.map((e) => (keep(e.phase) ? e.testError * 100 : null));
  test.setData([ex, pct((p) => p === 'finetune'), pct((p) => p !== 'finetune')] as uPlot.AlignedData);

  // what each iteration (round, in local SGD) moved per example it trained: results in, blobs out (weights, deltas, partitions)
  const bytes = chart('chart-bytes', [
    { label: 'in (results)', color: COLORS[3]! },
    { label: 'out (weights, deltas, partitions)', color: COLORS[5]! },
  ], 'bytes / example', xMode);
  const perExample = (f: (r: IterationMetricsRow) => number) => rows.map((r) => (r.count > 0 ? f(r) / r.count : null));
  bytes.setData([xs, perExample((r) => r.bytesIn), perExample((r) => r.bytesOut)] as uPlot.AlignedData);
  document.body.dataset.chartPoints = String(rows.length);
}

/** Fits every chart to its element's width (on a window resize). */
export function resizeCharts(): void {
  for (const [id, u] of charts) u.setSize({ width: Math.max(200, $(id).clientWidth), height: 220 });
}
