import { describe, expect, it } from 'vitest';
import { parseWeights, testError, weightsVersion, type TestSet } from '../../bench/scaling/evaluate.ts';
import { mergeJob } from '../../bench/scaling/rig.ts';
import { jsonReport, markdownTable, tabulate, timeToAccuracySvg, type PointResult, type RunInfo } from '../../bench/scaling/report.ts';

function point(over: Partial<PointResult>): PointResult {
  return {
    mode: 'sync', profile: 'lan', workers: 1, seconds: 40, examples: 40_000, iterations: 400,
    examplesPerSecond: 1000, steadyExamplesPerSecond: 1050, timeToTarget: 12.5, finalTestError: 0.08,
    bytesDownPerWorker: [2e8], bytesUpPerWorker: [1e8], coordinatorBytesOut: 1.9e8, coordinatorBytesIn: 0.9e8,
    curve: [
      { t: 0, testError: 0.9, iteration: 0, source: 'rig' },
      { t: 12.5, testError: 0.09, iteration: 120, source: 'rig' },
      { t: 40, testError: 0.08, iteration: 400, source: 'coordinator' },
    ],
    churn: { left: 0, joined: 0 }, loadAverage: [1.5, 2.5],
    ...over,
  };
}

const info: RunInfo = {
  date: '2026-12-01T00:00:00.000Z', command: 'bench/scaling/run.sh --quick', job: 'quick.json', target: 0.1,
  cpuPerWorker: 0.4, tasksPerLease: 8, churnSeconds: 0, profiles: { lan: { downMbit: null, upMbit: null }, home: { downMbit: 50, upMbit: 10 } }, notes: ['no latency'],
};

describe('scaling rig report', () => {
  const points = [
    point({}),
    point({ workers: 2, examplesPerSecond: 1500, examples: 60_000, bytesDownPerWorker: [2e8, 3e8], bytesUpPerWorker: [1e8, 1e8], timeToTarget: null }),
    point({ profile: 'home', workers: 2, examplesPerSecond: 30, examples: 1200 }),
  ];

  it('sums the links, divides by the examples and compares with 1 worker of the same mode and profile', () => {
    const [one, two, home] = tabulate(points);
    expect(one!.bytesDown).toBe(2e8);
    expect(one!.bytesPerExample).toBeCloseTo(3e8 / 40_000, 9);
    expect(one!.efficiency).toBeCloseTo(1, 12);
    expect(two!.bytesDown).toBe(5e8);
    expect(two!.bytesUp).toBe(2e8);
    expect(two!.bytesPerExample).toBeCloseTo(7e8 / 60_000, 9);
    expect(two!.efficiency).toBeCloseTo(1500 / (2 * 1000), 12);
    expect(home!.efficiency).toBeNull(); // no 1-worker point on home
  });

  it('writes one markdown row per point, with the conditions above the table', () => {
    const md = markdownTable(info, points);
    const rows = md.split('\n').filter((l) => l.startsWith('| sync'));
    expect(rows).toHaveLength(3);
    expect(rows[0]).toContain('| 1 | 40 | 40000 | 1000 | 1050 | 12.5 | 8.00% | 200 | 100 |');
    expect(rows[1]).toContain('not reached');
    expect(rows[1]).toContain('| 0.75 |');
    expect(md).toContain('`home` 50 Mbit/s down, 10 up');
    expect(md).toContain('- no latency');
    const json = JSON.parse(jsonReport(info, points)) as { points: { efficiency: number | null; bytesPerExample: number }[]; target: number };
    expect(json.target).toBe(0.1);
    expect(json.points.map((p) => p.efficiency)).toEqual([1, 0.75, null]);
  });

  it('draws one line per worker count, the target and a legend, in a well-formed SVG', () => {
    const svg = timeToAccuracySvg('sync on lan <quick>', points.slice(0, 2), 0.1);
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg.trim().endsWith('</svg>')).toBe(true);
    expect(svg.match(/<polyline/g)).toHaveLength(2);
    expect(svg).toContain('stroke-dasharray'); // the target line
    expect(svg).toContain('1 worker, 13 s');
    expect(svg).toContain('2 workers<'); // target not reached: no time
    expect(svg).toContain('&lt;quick&gt;');
    // x of the last point is the right edge (40 s), y of 0.9 is near the top
    const first = /points="([^"]+)"/.exec(svg)![1]!.split(' ');
    expect(first[0]).toMatch(/^64\.0,/);
    expect(Number(first[2]!.split(',')[0])).toBeCloseTo(570, 0);
  });
});

describe('scaling rig job merge', () => {
  it('merges nested objects field by field and replaces arrays and scalars', () => {
    const base = { layers: [784, 64, 10], finetune: { epochs: 5, learningRate: { start: 0.3, decay: 0.9 } } };
    expect(mergeJob(base, { layers: [784, 10], finetune: { learningRate: { start: 0.1 } }, mode: 'x' })).toEqual({
      layers: [784, 10], finetune: { epochs: 5, learningRate: { start: 0.1, decay: 0.9 } }, mode: 'x',
    });
    expect(base.finetune.learningRate.start).toBe(0.3); // not mutated
  });
});

/** A weights blob as the coordinator serves it: safetensors, F32, metadata with the version. */
function safetensors(tensors: Record<string, { shape: number[]; data: number[] }>, version: number): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: { format: 'tessera-weights', version: String(version) } };
  let off = 0;
  for (const [name, t] of Object.entries(tensors)) {
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [off, off + t.data.length * 4] };
    off += t.data.length * 4;
  }
  const h = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + off);
  new DataView(out.buffer).setUint32(0, h.length, true);
  out.set(h, 8);
  let p = 8 + h.length;
  for (const t of Object.values(tensors)) {
    out.set(new Uint8Array(new Float32Array(t.data).buffer), p);
    p += t.data.length * 4;
  }
  return out;
}

describe('scaling rig evaluator', () => {
  // 2 pixels -> 2 hidden -> 2 classes; hidden h0 = sigmoid(4 x0 - 2), h1 = sigmoid(4 x1 - 2); class = argmax(h0 - h1, h1 - h0)
  const blob = safetensors({
    'rbm0.W': { shape: [2, 2], data: [4, 0, 0, 4] },
    'rbm0.vbias': { shape: [2], data: [0, 0] },
    'rbm0.hbias': { shape: [2], data: [-2, -2] },
    'out.W': { shape: [2, 2], data: [1, -1, -1, 1] },
    'out.b': { shape: [2], data: [0, 0] },
  }, 7);

  it('reads the tensors and the version', () => {
    const w = parseWeights(blob);
    expect([...w.keys()].sort()).toEqual(['out.W', 'out.b', 'rbm0.W', 'rbm0.hbias', 'rbm0.vbias']);
    expect(Array.from(w.get('rbm0.hbias')!.data)).toEqual([-2, -2]);
    expect(weightsVersion(blob)).toBe(7);
  });

  it('counts the examples whose argmax is not the label', () => {
    // bright first pixel -> class 0, bright second -> class 1; the last two labels are wrong on purpose
    const test: TestSet = { count: 5, dim: 2, images: new Uint8Array([255, 0, 0, 255, 200, 10, 255, 0, 0, 255]), labels: new Uint8Array([0, 1, 0, 1, 0]) };
    expect(testError(blob, test, 2)).toBeCloseTo(2 / 5, 12);
    expect(() => testError(blob, { ...test, dim: 3, images: new Uint8Array(15) })).toThrow(/2 inputs/);
  });
});
