/**
 * The admin page: token entry, a live view of the job (server-sent events,
 * no polling), charts, workers, filters, the confusion matrix, and the
 * controls (create, start, pause, resume, cancel, download weights).
 *
 * Every admin call carries `Authorization: Bearer <token>`; the token lives
 * in sessionStorage (this tab only). The event stream cannot send headers and
 * passes it as `?token=` (coordinator/API.md).
 */
import uPlot from 'uplot';
import { PATHS, type ApiError, type FieldIssue, type IterationMetricsRow, type JobAction, type JobEvent } from '../../core/protocol/index.ts';
import { DEFAULT_JOB } from '../../core/model/config.ts';
import { decodeSafetensors } from '../../core/safetensors.ts';
import { drawFilters } from '../../client/web/filters.ts';
import { formatAgo, formatBytes, formatCount, formatDuration, formatRate } from '../../client/web/format.ts';
import type { JobSummary, WorkerView as WorkerRow } from '../../core/protocol/index.ts';
import type { Coordinator } from '../engine/coordinator.ts';

/** One test evaluation as the metrics endpoint answers it; each carries its confusion matrix (K x K, [true * K + predicted]). */
type EvaluationPoint = ReturnType<Coordinator['metrics']>['evaluations'][number] & { readonly confusion?: readonly number[] };

const TOKEN_KEY = 'tessera.adminToken';

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`admin page: element #${id} is missing from admin.html`);
  return el as T;
};

const ui = {
  login: $('login'),
  loginForm: $<HTMLFormElement>('login-form'),
  token: $<HTMLInputElement>('token'),
  loginError: $('login-error'),
  dash: $('dash'),
  live: $('live'),
  logout: $<HTMLButtonElement>('logout'),
  jobSelect: $<HTMLSelectElement>('job-select'),
  jobState: $('job-state'),
  jobPhase: $('job-phase'),
  actions: {
    start: $<HTMLButtonElement>('act-start'),
    pause: $<HTMLButtonElement>('act-pause'),
    resume: $<HTMLButtonElement>('act-resume'),
    cancel: $<HTMLButtonElement>('act-cancel'),
  } satisfies Record<JobAction, HTMLButtonElement>,
  weights: $<HTMLButtonElement>('act-weights'),
  progressBar: $('progress-bar'),
  progressText: $('progress-text'),
  eta: $('eta'),
  actionError: $('action-error'),
  sRate: $('s-rate'),
  sIn: $('s-in'),
  sOut: $('s-out'),
  sTasks: $('s-tasks'),
  sRejected: $('s-rejected'),
  sTest: $('s-test'),
  xIter: $<HTMLButtonElement>('x-iter'),
  xTime: $<HTMLButtonElement>('x-time'),
  filters: $<HTMLCanvasElement>('filters'),
  filtersEmpty: $('filters-empty'),
  filtersCaption: $('filters-caption'),
  confusion: $('confusion'),
  confusionCaption: $('confusion-caption'),
  workersBody: $('workers').querySelector('tbody')!,
  workersCaption: $('workers-caption'),
  form: $<HTMLFormElement>('job-form'),
  formError: $('form-error'),
  formOk: $('form-ok'),
};

// ---------------------------------------------------------------- API calls

class AuthError extends Error {}

let token = sessionStorage.getItem(TOKEN_KEY) ?? '';

async function api<T>(path: string, init: RequestInit = {}): Promise<T> {
  const res = await fetch(path, {
    ...init,
    headers: { ...(init.body ? { 'content-type': 'application/json' } : {}), ...init.headers, authorization: `Bearer ${token}` },
  });
  if (res.status === 401) throw new AuthError('the coordinator refused this token');
  if (!res.ok) {
    let body: ApiError | null = null;
    try {
      body = (await res.json()) as ApiError;
    } catch {
      // not JSON
    }
    throw new ApiFailure(res.status, body);
  }
  return (await res.json()) as T;
}

class ApiFailure extends Error {
  constructor(readonly status: number, readonly body: ApiError | null) {
    super(body ? `${body.error}: ${body.detail}` : `HTTP ${status}`);
  }
}

function handleAuth(e: unknown): boolean {
  if (!(e instanceof AuthError)) return false;
  logout(e.message);
  return true;
}

// ---------------------------------------------------------------- state

interface View {
  jobs: JobSummary[];
  job: JobSummary | null;
  rows: IterationMetricsRow[];
  evals: EvaluationPoint[];
  workers: WorkerRow[];
  /** (wall ms, iteration) of recent iteration events, for the rate and ETA */
  ticks: [number, number][];
  xMode: 'iteration' | 'time';
}

const view: View = { jobs: [], job: null, rows: [], evals: [], workers: [], ticks: [], xMode: 'iteration' };
let events: EventSource | null = null;

// ---------------------------------------------------------------- login

function showLogin(message = ''): void {
  ui.login.classList.remove('hidden');
  ui.dash.classList.add('hidden');
  ui.logout.classList.add('hidden');
  ui.loginError.textContent = message;
  setLive('offline', '');
  document.body.dataset.view = 'login';
}

function logout(message = ''): void {
  token = '';
  sessionStorage.removeItem(TOKEN_KEY);
  events?.close();
  events = null;
  showLogin(message);
}

ui.loginForm.addEventListener('submit', (e) => {
  e.preventDefault();
  token = ui.token.value.trim();
  void open();
});
ui.logout.addEventListener('click', () => logout());

async function open(): Promise<void> {
  if (!token) return showLogin();
  try {
    const { jobs } = await api<{ jobs: JobSummary[] }>(PATHS.admin.jobs);
    sessionStorage.setItem(TOKEN_KEY, token);
    ui.token.value = '';
    ui.login.classList.add('hidden');
    ui.dash.classList.remove('hidden');
    ui.logout.classList.remove('hidden');
    document.body.dataset.view = 'dashboard';
    setJobs(jobs);
    connectEvents();
    void refreshWorkers();
    const pick = jobs.find((j) => j.state === 'running' || j.state === 'paused') ?? jobs[jobs.length - 1];
    await selectJob(pick?.id ?? null);
  } catch (e) {
    if (handleAuth(e)) return;
    showLogin(`cannot reach the coordinator: ${e instanceof Error ? e.message : String(e)}`);
  }
}

// ---------------------------------------------------------------- live events

function setLive(cls: string, text: string): void {
  ui.live.className = `badge ${cls}`;
  ui.live.textContent = text || 'offline';
}

function connectEvents(): void {
  events?.close();
  const es = new EventSource(`${PATHS.admin.events}?token=${encodeURIComponent(token)}`);
  events = es;
  setLive('info', 'connecting');
  let opened = false;
  es.onopen = () => {
    setLive('good', 'live');
    // after a reconnect, fetch what the stream missed
    if (opened) {
      void refreshJob();
      void refreshMetrics(false);
      void refreshWorkers();
    }
    opened = true;
  };
  es.onerror = () => {
    if (es.readyState === EventSource.CLOSED) {
      setLive('bad', 'disconnected');
      // Closed for good: a refused token or the coordinator gone. Check which, then retry.
      setTimeout(() => {
        if (events !== es) return;
        api(PATHS.admin.jobs).then(() => connectEvents(), (e) => {
          if (!handleAuth(e)) setTimeout(() => events === es && connectEvents(), 3000);
        });
      }, 2000);
    } else setLive('warn', 'reconnecting');
  };
  for (const type of ['iteration', 'phase', 'evaluation', 'job', 'checkpoint', 'worker'] as const) {
    es.addEventListener(type, (m) => {
      try {
        onEvent(JSON.parse((m as MessageEvent<string>).data) as JobEvent);
      } catch {
        // ignore a malformed event
      }
    });
  }
}

function onEvent(e: JobEvent): void {
  switch (e.type) {
    case 'iteration':
      if (e.jobId !== view.job?.id) return;
      addRows([e.metrics]);
      view.ticks.push([Date.now(), e.metrics.iteration]);
      if (view.ticks.length > 60) view.ticks.shift();
      if (view.job) view.job = { ...view.job, iteration: Math.max(view.job.iteration, e.metrics.iteration + 1) };
      renderJob();
      soon('charts', 250, renderCharts);
      soon('job', 1000, refreshJob);
      soon('workers', 2000, refreshWorkers);
      soon('filters', 4000, refreshFilters);
      return;
    case 'evaluation':
      if (e.jobId !== view.job?.id) return;
      soon('metrics', 300, () => refreshMetrics(false));
      return;
    case 'phase':
    case 'checkpoint':
      if (e.jobId === view.job?.id) soon('job', 300, refreshJob);
      return;
    case 'job':
      soon('jobs', 300, refreshJobs);
      if (e.jobId === view.job?.id) soon('job', 100, refreshJob);
      return;
    case 'worker':
      soon('workers', 300, refreshWorkers);
      return;
  }
}

/** Runs fn at most once per `ms` per key (trailing), so a burst of events makes one request. */
const timers = new Map<string, ReturnType<typeof setTimeout>>();
function soon(key: string, ms: number, fn: () => unknown): void {
  if (timers.has(key)) return;
  timers.set(key, setTimeout(() => {
    timers.delete(key);
    void fn();
  }, ms));
}

// ---------------------------------------------------------------- jobs

function setJobs(jobs: JobSummary[]): void {
  view.jobs = jobs;
  const current = view.job?.id ?? ui.jobSelect.value;
  ui.jobSelect.replaceChildren(
    ...(jobs.length ? jobs : []).map((j) => new Option(`${j.name} · ${j.id}`, j.id)),
  );
  if (!jobs.length) ui.jobSelect.append(new Option('no jobs yet', ''));
  if (current && jobs.some((j) => j.id === current)) ui.jobSelect.value = current;
}

async function refreshJobs(): Promise<void> {
  try {
    setJobs((await api<{ jobs: JobSummary[] }>(PATHS.admin.jobs)).jobs);
  } catch (e) {
    handleAuth(e);
  }
}

ui.jobSelect.addEventListener('change', () => void selectJob(ui.jobSelect.value || null));

async function selectJob(id: string | null): Promise<void> {
  view.job = id ? view.jobs.find((j) => j.id === id) ?? null : null;
  view.rows = [];
  view.evals = [];
  view.ticks = [];
  if (id) ui.jobSelect.value = id;
  renderJob();
  renderCharts();
  renderConfusion(null);
  ui.filtersEmpty.classList.remove('hidden');
  ui.filters.classList.add('hidden');
  if (!id) return;
  await Promise.all([refreshJob(), refreshMetrics(true), refreshFilters()]);
}

async function refreshJob(): Promise<void> {
  const id = view.job?.id;
  if (!id) return;
  try {
    const job = await api<JobSummary>(PATHS.admin.job(id));
    if (view.job?.id !== id) return;
    view.job = job;
    view.jobs = view.jobs.map((j) => (j.id === id ? job : j));
    renderJob();
  } catch (e) {
    handleAuth(e);
  }
}

async function refreshMetrics(all: boolean): Promise<void> {
  const id = view.job?.id;
  if (!id) return;
  const since = all || !view.rows.length ? 0 : view.rows[view.rows.length - 1]!.iteration + 1;
  try {
    const m = await api<{ iterations: IterationMetricsRow[]; evaluations: EvaluationPoint[] }>(`${PATHS.admin.metrics(id)}?since=${since}`);
    if (view.job?.id !== id) return;
    addRows(m.iterations);
    view.evals = m.evaluations;
    renderCharts();
    renderStats();
    const latest = [...m.evaluations].reverse().find((ev) => ev.confusion);
    renderConfusion(latest ?? null);
  } catch (e) {
    handleAuth(e);
  }
}

function addRows(rows: readonly IterationMetricsRow[]): void {
  if (!rows.length) return;
  const byIt = new Map(view.rows.map((r) => [r.iteration, r]));
  for (const r of rows) byIt.set(r.iteration, r);
  view.rows = [...byIt.values()].sort((a, b) => a.iteration - b.iteration);
}

const STATE_CLASS: Record<string, string> = { running: 'good', paused: 'warn', created: 'info', done: 'good', cancelled: '', failed: 'bad' };

function renderJob(): void {
  const j = view.job;
  const allowed: Record<JobAction, boolean> = {
    start: j?.state === 'created',
    pause: j?.state === 'running',
    resume: j?.state === 'paused',
    cancel: j?.state === 'running' || j?.state === 'paused' || j?.state === 'created',
  };
  for (const [a, btn] of Object.entries(ui.actions) as [JobAction, HTMLButtonElement][]) btn.disabled = !allowed[a];
  ui.weights.disabled = !j;
  document.body.dataset.jobState = j?.state ?? '';
  if (!j) {
    ui.jobState.textContent = '—';
    ui.jobState.className = 'badge';
    ui.jobPhase.textContent = 'no job: create one below';
    ui.progressBar.style.width = '0';
    ui.progressText.textContent = '—';
    ui.eta.textContent = '';
    renderStats();
    return;
  }
  ui.jobState.textContent = j.state;
  ui.jobState.className = `badge ${STATE_CLASS[j.state] ?? ''}`;
  // a failed job says why (JobSummary.error): e.g. its config does not fit the data
  ui.jobPhase.textContent = j.state === 'done' ? 'finished' : j.state === 'failed' ? `failed: ${j.error ?? 'no reason recorded'}` : j.phase;
  const done = Math.min(j.iteration, j.totalIterations);
  const pct = j.totalIterations ? (100 * done) / j.totalIterations : 0;
  ui.progressBar.style.width = `${pct.toFixed(2)}%`;
  ui.progressText.textContent = `iteration ${formatCount(done)} of ${formatCount(j.totalIterations)} (${pct.toFixed(1)}%)`;
  ui.progressText.dataset.iteration = String(done);
  const rate = iterationRate();
  ui.eta.textContent = j.state === 'done'
    ? `finished${j.finishedAt && j.startedAt ? ` in ${formatDuration(j.finishedAt - j.startedAt)}` : ''}`
    : j.state === 'running' && rate > 0
      ? `ETA ${formatDuration(((j.totalIterations - done) / rate) * 1000)}`
      : '';
  renderStats();
}

/** Iterations per second: from live events when there are some, else from the rows' durations. */
function iterationRate(): number {
  const t = view.ticks;
  if (t.length >= 3) {
    const [t0, i0] = t[0]!;
    const [t1, i1] = t[t.length - 1]!;
    if (t1 > t0) return ((i1 - i0) * 1000) / (t1 - t0);
  }
  const recent = view.rows.slice(-20);
  const s = recent.reduce((a, r) => a + r.seconds, 0);
  return s > 0 ? recent.length / s : 0;
}

function renderStats(): void {
  const j = view.job;
  const rate = iterationRate();
  ui.sRate.textContent = rate > 0 ? formatRate(rate * 60) : '—';
  ui.sIn.textContent = formatBytes(view.rows.reduce((a, r) => a + r.bytesIn, 0));
  ui.sOut.textContent = formatBytes(view.rows.reduce((a, r) => a + r.bytesOut, 0));
  ui.sTasks.innerHTML = j ? `${formatCount(j.tasks.done)} <small>${j.tasks.leased} out · ${j.tasks.pending} waiting</small>` : '—';
  ui.sRejected.textContent = j ? `${j.rejectedResults} · ${j.lateResults}` : '—';
  ui.sTest.innerHTML = testErrorCard(j?.lastEvaluation ?? null, view.evals);
}

/**
 * The test-error card: the latest fine-tuning evaluation. Before fine-tuning
 * the output layer is untrained (about 90% error on 10 classes, whatever the
 * RBMs learned), so a pre-training evaluation is shown labelled as such.
 */
function testErrorCard(last: { iteration: number; phase: string; testError: number } | null, evals: readonly EvaluationPoint[]): string {
  const all = last && !evals.some((e) => e.iteration === last.iteration) ? [...evals, last] : evals;
  const fine = [...all].reverse().find((e) => e.phase === 'finetune');
  if (fine) return `${(fine.testError * 100).toFixed(2)}% <small>@ ${fine.iteration}</small>`;
  const pre = all[all.length - 1];
  if (!pre) return '—';
  return `<span class="muted">${(pre.testError * 100).toFixed(2)}%</span> <small>after ${escapeHtml(pre.phase)}; output layer untrained until fine-tuning</small>`;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

for (const [action, btn] of Object.entries(ui.actions) as [JobAction, HTMLButtonElement][]) {
  btn.addEventListener('click', async () => {
    const id = view.job?.id;
    if (!id) return;
    ui.actionError.textContent = '';
    btn.disabled = true;
    try {
      view.job = await api<JobSummary>(PATHS.admin.action(id, action), { method: 'POST' });
      renderJob();
      void refreshJobs();
    } catch (e) {
      if (!handleAuth(e)) ui.actionError.textContent = `${action} failed: ${e instanceof Error ? e.message : String(e)}`;
      renderJob();
    }
  });
}

ui.weights.addEventListener('click', async () => {
  const id = view.job?.id;
  if (!id) return;
  ui.actionError.textContent = '';
  try {
    const res = await fetch(PATHS.admin.weights(id), { headers: { authorization: `Bearer ${token}` } });
    if (res.status === 401) throw new AuthError('the coordinator refused this token');
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const url = URL.createObjectURL(await res.blob());
    const a = document.createElement('a');
    a.href = url;
    a.download = `${view.job?.name ?? 'tessera'}-${id}-it${view.job?.iteration ?? 0}.safetensors`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  } catch (e) {
    if (!handleAuth(e)) ui.actionError.textContent = `download failed: ${e instanceof Error ? e.message : String(e)}`;
  }
});

// ---------------------------------------------------------------- charts

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

function chart(id: string, series: { label: string; color: string; points?: boolean; scale?: string }[], yLabel: string, yRange?: uPlot.Range.Function): uPlot {
  const el = $(id);
  const existing = charts.get(id);
  const key = series.map((s) => s.label).join('|') + view.xMode;
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
      { label: view.xMode === 'iteration' ? 'iteration' : 'seconds of training', labelSize: 18, size: 36, stroke: '#677185', grid: { stroke: '#eef0f4' } },
      { label: yLabel, labelSize: 18, size: 52, stroke: '#677185', grid: { stroke: '#eef0f4' } },
    ],
    series: [
      { label: view.xMode === 'iteration' ? 'iteration' : 's' },
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

function renderCharts(): void {
  const rows = view.rows;
  // x of each iteration: its number, or cumulative seconds of training when it ended
  const xOf = new Map<number, number>();
  let t = 0;
  for (const r of rows) {
    t += r.seconds;
    xOf.set(r.iteration, view.xMode === 'iteration' ? r.iteration : t);
  }
  const xs = rows.map((r) => xOf.get(r.iteration)!);

  const layers = [...new Set(rows.filter((r) => r.phase.startsWith('pretrain')).map((r) => r.phase))];
  const recon = chart('chart-recon', (layers.length ? layers : ['pretrain layer 0']).map((p, i) => ({ label: p.replace('pretrain ', ''), color: COLORS[i % COLORS.length]! })), 'error / example');
  recon.setData([xs, ...(layers.length ? layers : ['pretrain layer 0']).map((p) => rows.map((r) => (r.phase === p ? r.loss : null)))] as uPlot.AlignedData);

  const loss = chart('chart-loss', [
    { label: 'cross-entropy', color: COLORS[0]! },
    { label: 'train error', color: COLORS[1]! },
  ], 'per example');
  loss.setData([xs, rows.map((r) => (r.phase === 'finetune' ? r.loss : null)), rows.map((r) => (r.phase === 'finetune' ? 1 - r.accuracy : null))] as uPlot.AlignedData);

  const evals = view.evals;
  const ex = evals.map((e) => (view.xMode === 'iteration' ? e.iteration : xOf.get(e.iteration) ?? xOf.get(e.iteration - 1) ?? t));
  // Pre-training evaluations (output layer untrained, ~90%) are a series of their own, so fine-tuning's stands apart.
  const test = chart(
    'chart-test',
    [
      { label: 'fine-tuning', color: COLORS[2]!, points: true },
      { label: 'after pre-training (output untrained)', color: '#adb5bd', points: true },
    ],
    'test error %',
    clampedRange(0, 100),
  );
  const pct = (keep: (phase: string) => boolean) => evals.map((e) => (keep(e.phase) ? e.testError * 100 : null));
  test.setData([ex, pct((p) => p === 'finetune'), pct((p) => p !== 'finetune')] as uPlot.AlignedData);
  document.body.dataset.chartPoints = String(rows.length);
}

function setXMode(mode: 'iteration' | 'time'): void {
  view.xMode = mode;
  ui.xIter.classList.toggle('on', mode === 'iteration');
  ui.xTime.classList.toggle('on', mode === 'time');
  renderCharts();
}
ui.xIter.addEventListener('click', () => setXMode('iteration'));
ui.xTime.addEventListener('click', () => setXMode('time'));
window.addEventListener('resize', () => {
  for (const [id, u] of charts) u.setSize({ width: Math.max(200, $(id).clientWidth), height: 220 });
});

// ---------------------------------------------------------------- filters, confusion

async function refreshFilters(): Promise<void> {
  const id = view.job?.id;
  if (!id) return;
  try {
    const res = await fetch(`${PATHS.admin.job(id)}/filters?n=100`, { headers: { authorization: `Bearer ${token}` } });
    if (res.status === 401) throw new AuthError('the coordinator refused this token');
    if (!res.ok) return;
    const st = decodeSafetensors(new Uint8Array(await res.arrayBuffer()), { source: 'filters' });
    const t = st.tensors.get('filters');
    if (!t || t.dtype !== 'F32' || t.shape.length !== 2 || view.job?.id !== id) return;
    const [n, V] = t.shape as [number, number];
    const side = Math.round(Math.sqrt(V));
    drawFilters(ui.filters, { n, V, side: side * side === V ? side : V, data: t.data as Float32Array }, Math.min(10, n), 3);
    ui.filters.classList.remove('hidden');
    ui.filtersEmpty.classList.add('hidden');
    ui.filtersCaption.textContent = `· ${n} units, weights version ${st.metadata.version ?? '?'}`;
  } catch (e) {
    handleAuth(e);
  }
}

function renderConfusion(ev: EvaluationPoint | null): void {
  const m = ev?.confusion;
  if (!ev || !m) {
    ui.confusion.innerHTML = '<p class="muted">No test evaluation yet.</p>';
    ui.confusionCaption.textContent = '';
    return;
  }
  const K = Math.round(Math.sqrt(m.length));
  let max = 1;
  for (let a = 0; a < K; a++) for (let p = 0; p < K; p++) if (a !== p) max = Math.max(max, m[a * K + p]!);
  const table = document.createElement('table');
  table.className = 'confusion';
  const head = table.insertRow();
  head.insertCell().outerHTML = '<th class="axis">true ↓ / predicted →</th>';
  for (let p = 0; p < K; p++) head.insertCell().outerHTML = `<th>${p}</th>`;
  for (let a = 0; a < K; a++) {
    const row = table.insertRow();
    row.insertCell().outerHTML = `<th>${a}</th>`;
    let total = 0;
    for (let p = 0; p < K; p++) total += m[a * K + p]!;
    for (let p = 0; p < K; p++) {
      const v = m[a * K + p]!;
      const td = row.insertCell();
      td.textContent = v ? String(v) : '';
      if (a === p) {
        const s = total ? v / total : 0;
        td.style.background = `rgba(31, 157, 85, ${0.15 + 0.6 * s})`;
        td.style.color = s > 0.6 ? '#fff' : '';
      } else if (v) {
        td.style.background = `rgba(214, 69, 69, ${0.08 + 0.75 * (v / max)})`;
        td.style.color = v / max > 0.6 ? '#fff' : '';
      }
      td.title = `true ${a}, predicted ${p}: ${v}`;
    }
  }
  ui.confusion.replaceChildren(table);
  ui.confusionCaption.textContent = `· iteration ${ev.iteration}, test error ${(ev.testError * 100).toFixed(2)}%`;
}

// ---------------------------------------------------------------- workers

async function refreshWorkers(): Promise<void> {
  try {
    view.workers = (await api<{ workers: WorkerRow[] }>(PATHS.admin.workers)).workers;
    renderWorkers();
  } catch (e) {
    handleAuth(e);
  }
}

function renderWorkers(): void {
  const now = Date.now();
  const rows = [...view.workers].sort((a, b) => Number(b.state === 'active') - Number(a.state === 'active') || b.lastSeen - a.lastSeen);
  ui.workersBody.replaceChildren(
    ...rows.map((w) => {
      const tr = document.createElement('tr');
      tr.dataset.worker = w.id;
      tr.dataset.runtime = w.runtime;
      const cells: [string, string?][] = [
        [w.name],
        [w.state],
        [w.runtime],
        [w.backend],
        [w.adapter, 'adapter'],
        [formatCount(w.tasksDone), 'num'],
        [formatRate(w.examplesPerSecond), 'num'],
        [formatBytes(w.bytesUp), 'num'],
        [formatBytes(w.bytesDown), 'num'],
        [String(w.rejected), 'num'],
        [String(w.late), 'num'],
        [formatAgo(w.lastSeen, now)],
      ];
      for (const [text, cls] of cells) {
        const td = tr.insertCell();
        td.textContent = text;
        if (cls) td.className = cls;
        if (cls === 'adapter') td.title = text;
      }
      const badge = document.createElement('span');
      badge.className = `badge ${w.state === 'active' ? 'good' : w.state === 'lost' ? 'warn' : ''}`;
      badge.textContent = w.state;
      tr.cells[1]!.replaceChildren(badge);
      return tr;
    }),
  );
  const active = view.workers.filter((w) => w.state === 'active').length;
  ui.workersCaption.textContent = `· ${active} active of ${view.workers.length}`;
}

// ---------------------------------------------------------------- new job

/** The form starts from the coordinator's defaults (DEFAULT_JOB), so the two never drift apart. */
for (const input of ui.form.querySelectorAll<HTMLInputElement>('input[name]')) {
  let v: unknown = DEFAULT_JOB;
  for (const k of input.name.split('.')) v = (v as Record<string, unknown> | undefined)?.[k];
  if (typeof v === 'number' || typeof v === 'string') input.value = String(v);
  else if (Array.isArray(v)) input.value = v.join(',');
}

ui.form.addEventListener('submit', async (e) => {
  e.preventDefault();
  clearFormErrors();
  const fd = new FormData(ui.form);
  const cfg: Record<string, unknown> = {};
  const local: FieldIssue[] = [];
  for (const [name, raw] of fd) {
    if (name === 'startNow') continue;
    const value = String(raw).trim();
    if (value === '') continue;
    let v: unknown = value;
    if (name === 'layers') {
      const parts = value.split(/[\s,x-]+/).filter(Boolean).map(Number);
      if (parts.some((n) => !Number.isFinite(n))) local.push({ field: name, message: 'expected sizes separated by commas, e.g. 784,500,10' });
      v = parts;
    } else if (name !== 'name') {
      v = Number(value);
      if (!Number.isFinite(v)) local.push({ field: name, message: 'expected a number' });
    }
    setPath(cfg, name.split('.'), v);
  }
  if (local.length) return showFormErrors(local);
  try {
    const job = await api<JobSummary>(PATHS.admin.jobs, { method: 'POST', body: JSON.stringify(cfg) });
    let started = job;
    if (fd.get('startNow')) {
      try {
        started = await api<JobSummary>(PATHS.admin.action(job.id, 'start'), { method: 'POST' });
      } catch (err) {
        if (handleAuth(err)) return;
        ui.formError.textContent = `created ${job.id}, but could not start it: ${err instanceof Error ? err.message : String(err)}`;
      }
    }
    ui.formOk.textContent = `created ${job.id}${started.state === 'running' ? ' and started it' : ''}`;
    await refreshJobs();
    await selectJob(job.id);
  } catch (err) {
    if (handleAuth(err)) return;
    if (err instanceof ApiFailure && err.status === 400 && err.body) return showFormErrors(issuesOf(err.body));
    ui.formError.textContent = err instanceof Error ? err.message : String(err);
  }
});

function setPath(obj: Record<string, unknown>, path: string[], v: unknown): void {
  let o = obj;
  for (const k of path.slice(0, -1)) o = (o[k] ??= {}) as Record<string, unknown>;
  o[path[path.length - 1]!] = v;
}

/** The config issues of a 400 answer (`issues: [{field, message}]`); without them, the detail as one issue for the whole form. */
function issuesOf(body: ApiError): FieldIssue[] {
  const issues = Array.isArray(body.issues) ? body.issues.filter((i) => typeof i?.field === 'string' && typeof i?.message === 'string') : [];
  return issues.length ? issues : [{ field: '', message: body.detail }];
}

function clearFormErrors(): void {
  ui.formError.textContent = '';
  ui.formOk.textContent = '';
  for (const l of ui.form.querySelectorAll<HTMLElement>('label[data-field]')) {
    l.classList.remove('invalid');
    l.querySelector('.field-error')!.textContent = '';
  }
}

function showFormErrors(issues: readonly FieldIssue[]): void {
  const unplaced: string[] = [];
  for (const { field, message } of issues) {
    // an issue on a field the form lacks (e.g. learningRate.decay) goes to its nearest shown parent, else on top
    let label: HTMLElement | null = null;
    for (let f = field; f && !label; f = f.includes('.') ? f.slice(0, f.lastIndexOf('.')) : '') {
      label = ui.form.querySelector<HTMLElement>(`label[data-field="${CSS.escape(f)}"]`);
    }
    if (!label) {
      unplaced.push(field ? `${field}: ${message}` : message);
      continue;
    }
    label.classList.add('invalid');
    const span = label.querySelector('.field-error')!;
    span.textContent = span.textContent ? `${span.textContent}; ${message}` : message;
  }
  ui.formError.textContent = unplaced.length ? unplaced.join('; ') : issues.length ? 'The job was not created: fix the fields marked below.' : '';
}

// ---------------------------------------------------------------- go

void open();
