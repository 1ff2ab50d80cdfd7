/**
 * The scaling rig's outputs, as pure functions of the measured points: the
 * table (markdown and JSON) and the time-to-accuracy plot (an SVG written
 * here, no plotting dependency). rig.ts measures; this file only formats.
 */

/** One measured point: a mode on a profile with N workers. */
export interface PointResult {
  readonly mode: string;
  readonly profile: string;
  readonly workers: number;
  /** seconds the point ran after the job started (the measuring window) */
  readonly seconds: number;
  /** examples trained in the window (sum of the updates' counts) */
  readonly examples: number;
  readonly iterations: number;
  /** examples / seconds */
  readonly examplesPerSecond: number;
  /** examples per second from the first update to the last (start-up, first downloads left out) */
  readonly steadyExamplesPerSecond: number | null;
  /** seconds from the start to the first test error at or under the target; null: not reached */
  readonly timeToTarget: number | null;
  readonly finalTestError: number | null;
  /** bytes on each worker's link (veth counters, headers included), coordinator to worker */
  readonly bytesDownPerWorker: readonly number[];
  /** worker to coordinator */
  readonly bytesUpPerWorker: readonly number[];
  /** what the coordinator itself counted (its iteration metrics), for comparison */
  readonly coordinatorBytesOut: number;
  readonly coordinatorBytesIn: number;
  /** test error against seconds since the start */
  readonly curve: readonly CurvePoint[];
  /** workers that left and joined (churn) */
  readonly churn: { readonly left: number; readonly joined: number };
  readonly loadAverage: readonly [number, number];
}

export interface CurvePoint {
  readonly t: number;
  readonly testError: number;
  readonly iteration: number;
  /** rig: the rig's evaluation of a weights snapshot; coordinator: the job's own evaluation (API) */
  readonly source: 'rig' | 'coordinator';
}

export interface RunInfo {
  readonly date: string;
  readonly command: string;
  readonly job: string;
  readonly target: number;
  readonly cpuPerWorker: number;
  readonly tasksPerLease: number;
  readonly churnSeconds: number;
  readonly profiles: Readonly<Record<string, { readonly downMbit: number | null; readonly upMbit: number | null }>>;
  readonly notes: readonly string[];
}

export interface Row {
  readonly point: PointResult;
  readonly bytesDown: number;
  readonly bytesUp: number;
  readonly bytesPerExample: number | null;
  /** examples/s against N x the same mode and profile's 1-worker point; null without one */
  readonly efficiency: number | null;
}

const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);

/** Totals, bytes per example and scaling efficiency of every point. */
export function tabulate(points: readonly PointResult[]): Row[] {
  return points.map((p) => {
    const one = points.find((q) => q.mode === p.mode && q.profile === p.profile && q.workers === 1);
    const bytesDown = sum(p.bytesDownPerWorker);
    const bytesUp = sum(p.bytesUpPerWorker);
    return {
      point: p,
      bytesDown,
      bytesUp,
      bytesPerExample: p.examples > 0 ? (bytesDown + bytesUp) / p.examples : null,
      efficiency: one && one.examplesPerSecond > 0 ? p.examplesPerSecond / (p.workers * one.examplesPerSecond) : null,
    };
  });
}

const mb = (b: number): string => (b / 1e6).toFixed(b >= 1e8 ? 0 : 1);
const kb = (b: number | null): string => (b === null ? '-' : (b / 1e3).toFixed(b >= 1e5 ? 0 : 1));
const pct = (e: number | null): string => (e === null ? '-' : `${(e * 100).toFixed(2)}%`);
const mean = (xs: readonly number[]): number => (xs.length ? sum(xs) / xs.length : 0);

/** The table as markdown, with the run's conditions above it. */
export function markdownTable(info: RunInfo, points: readonly PointResult[]): string {
  const rows = tabulate(points);
  const profiles = Object.entries(info.profiles)
    .map(([name, p]) => `\`${name}\` ${p.downMbit === null ? 'unshaped' : `${p.downMbit} Mbit/s down, ${p.upMbit} up`}`)
    .join('; ');
  const lines = [
    `# Scaling rig, ${info.date}`,
    '',
    `Command: \`${info.command}\``,
    '',
    `Job: ${info.job}. Target test error ${pct(info.target)}. ${info.cpuPerWorker} CPU per worker (cgroup cpu quota), ` +
      `\`--tasks-per-lease ${info.tasksPerLease}\`, churn ${info.churnSeconds > 0 ? `every ${info.churnSeconds} s` : 'none'}. Profiles: ${profiles}.`,
    '',
    ...info.notes.map((n) => `- ${n}`),
    '',
    '| mode | profile | workers | s | examples | examples/s | steady ex/s | time to target (s) | last test error | down / worker (MB) | up / worker (MB) | down, all (MB) | up, all (MB) | bytes / example (KB) | coordinator out / in (MB) | efficiency | churn left / joined | load avg |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const r of rows) {
    const p = r.point;
    lines.push(
      `| ${p.mode} | ${p.profile} | ${p.workers} | ${p.seconds.toFixed(0)} | ${p.examples} | ${p.examplesPerSecond.toFixed(0)} | ` +
        `${p.steadyExamplesPerSecond === null ? '-' : p.steadyExamplesPerSecond.toFixed(0)} | ` +
        `${p.timeToTarget === null ? 'not reached' : p.timeToTarget.toFixed(1)} | ${pct(p.finalTestError)} | ` +
        `${mb(mean(p.bytesDownPerWorker))} | ${mb(mean(p.bytesUpPerWorker))} | ${mb(r.bytesDown)} | ${mb(r.bytesUp)} | ${kb(r.bytesPerExample)} | ` +
        `${mb(p.coordinatorBytesOut)} / ${mb(p.coordinatorBytesIn)} | ${r.efficiency === null ? '-' : r.efficiency.toFixed(2)} | ` +
        `${p.churn.left} / ${p.churn.joined} | ${p.loadAverage[0].toFixed(1)}-${p.loadAverage[1].toFixed(1)} |`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** Everything, for machines: the conditions, every point with its curve, and the derived columns. */
export function jsonReport(info: RunInfo, points: readonly PointResult[]): string {
  const rows = tabulate(points).map((r) => ({ ...r.point, bytesDown: r.bytesDown, bytesUp: r.bytesUp, bytesPerExample: r.bytesPerExample, efficiency: r.efficiency }));
  return `${JSON.stringify({ ...info, points: rows }, null, 2)}\n`;
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Round step for about `n` ticks over [0, max]. */
function tickStep(max: number, n: number): number {
  const raw = max / n;
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

/**
 * Test error (%) against seconds, one line per worker count, for the points
 * of one mode on one profile; a dashed line at the target.
 */
export function timeToAccuracySvg(title: string, points: readonly PointResult[], target: number): string {
  const W = 720;
  const H = 440;
  const m = { left: 64, right: 150, top: 40, bottom: 52 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const series = [...points].sort((a, b) => a.workers - b.workers);
  const all = series.flatMap((p) => p.curve);
  const tMax = Math.max(1, ...series.map((p) => p.seconds), ...all.map((c) => c.t));
  const eMax = Math.min(100, Math.max(target * 100 * 1.5, ...all.map((c) => c.testError * 100)) * 1.05);
  const x = (t: number): number => m.left + (t / tMax) * pw;
  const y = (e: number): number => m.top + ph - (Math.min(e, eMax) / eMax) * ph;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${m.left}" y="22" font-size="14" font-weight="bold">${esc(title)}</text>`,
  ];
  const xs = tickStep(tMax, 8);
  for (let t = 0; t <= tMax + 1e-9; t += xs) {
    out.push(`<line x1="${x(t).toFixed(1)}" y1="${m.top}" x2="${x(t).toFixed(1)}" y2="${m.top + ph}" stroke="#eee"/>`);
    out.push(`<text x="${x(t).toFixed(1)}" y="${m.top + ph + 16}" text-anchor="middle">${+t.toFixed(2)}</text>`);
  }
  const ys = tickStep(eMax, 6);
  for (let e = 0; e <= eMax + 1e-9; e += ys) {
    out.push(`<line x1="${m.left}" y1="${y(e).toFixed(1)}" x2="${m.left + pw}" y2="${y(e).toFixed(1)}" stroke="#eee"/>`);
    out.push(`<text x="${m.left - 6}" y="${(y(e) + 4).toFixed(1)}" text-anchor="end">${+e.toFixed(2)}</text>`);
  }
  out.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  out.push(`<text x="${m.left + pw / 2}" y="${H - 12}" text-anchor="middle">seconds since the job started</text>`);
  out.push(`<text transform="translate(16 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle">test error (%)</text>`);
  const ty = y(target * 100).toFixed(1);
  out.push(`<line x1="${m.left}" y1="${ty}" x2="${m.left + pw}" y2="${ty}" stroke="#555" stroke-dasharray="6 4"/>`);
  out.push(`<text x="${m.left + pw - 4}" y="${(y(target * 100) - 5).toFixed(1)}" text-anchor="end" fill="#555">target ${+(target * 100).toFixed(2)}%</text>`);
  series.forEach((p, i) => {
    const color = PALETTE[i % PALETTE.length]!;
    const pts = [...p.curve].sort((a, b) => a.t - b.t);
    if (pts.length > 1) {
      out.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.map((c) => `${x(c.t).toFixed(1)},${y(c.testError * 100).toFixed(1)}`).join(' ')}"/>`);
    }
    for (const c of pts) out.push(`<circle cx="${x(c.t).toFixed(1)}" cy="${y(c.testError * 100).toFixed(1)}" r="3" fill="${c.source === 'coordinator' ? 'white' : color}" stroke="${color}"/>`);
    const ly = m.top + 12 + i * 20;
    out.push(`<line x1="${m.left + pw + 14}" y1="${ly}" x2="${m.left + pw + 38}" y2="${ly}" stroke="${color}" stroke-width="2"/>`);
    const label = `${p.workers} worker${p.workers === 1 ? '' : 's'}${p.timeToTarget === null ? '' : `, ${p.timeToTarget.toFixed(0)} s`}`;
    out.push(`<text x="${m.left + pw + 44}" y="${ly + 4}">${esc(label)}</text>`);
  });
  const ny = m.top + 12 + series.length * 20 + 10;
  out.push(`<text x="${m.left + pw + 14}" y="${ny}" fill="#555" font-size="11">filled: rig's evaluation</text>`);
  out.push(`<text x="${m.left + pw + 14}" y="${ny + 14}" fill="#555" font-size="11">open: the job's own</text>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
