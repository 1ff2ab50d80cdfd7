/**
 * The admin page: token entry, a live view of the job (server-sent events,
 * no polling), charts, workers, filters, the confusion matrix, and the
 * controls (create, start, pause, resume, cancel, download weights).
 *
 * Every admin call carries `Authorization: Bearer <token>`; the token lives
 * in sessionStorage (this tab only). The event stream cannot send headers and
 * passes it as `?token=` (coordinator/API.md).
 *
 * About 560 lines: the page's state, its API calls and event stream, the
 * job's header and stats, and the wiring of every control, which share that
 * state; the drawing lives in admin-charts.ts (uPlot), admin-confusion.ts
 * and admin-workers.ts, the new-job form in admin-form.ts.
 */
import { PATHS, type ApiError, type IterationMetricsRow, type JobAction, type JobEvent } from '../../core/protocol/index.ts';
import { describeTraining } from '../../core/model/training.ts';
import { decodeSafetensors } from '../../core/safetensors.ts';
import { drawFilters } from '../../client/web/filters.ts';
import { formatBytes, formatCount, formatDuration, formatRate } from '../../client/web/format.ts';
import type { JobSummary, WorkerView as WorkerRow } from '../../core/protocol/index.ts';
import { renderCharts, resizeCharts, type EvaluationPoint, type XMode } from './admin-charts.ts';
import { drawConfusion } from './admin-confusion.ts';
import { $ } from './admin-dom.ts';
import { clearFormErrors, fillFormDefaults, issuesOf, readJobForm, showFormErrors, type JobFormElements } from './admin-form.ts';
import { workerRows } from './admin-workers.ts';

const TOKEN_KEY = 'tessera.adminToken';

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
  jobMode: $('job-mode'),
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
  sPerExample: $('s-per-example'),
  sTasks: $('s-tasks'),
  sRejected: $('s-rejected'),
  sChecking: $('s-checking'),
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
  xMode: XMode;
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
      soon('charts', 250, drawCharts);
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
  drawCharts();
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
    drawCharts();
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
    ui.jobMode.textContent = '';
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
  ui.jobMode.textContent = `· ${describeTraining(j.config)}`;
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
  // everything the iterations moved (results in, blobs out: weights, deltas, partitions) over the examples they trained
  const examples = view.rows.reduce((a, r) => a + r.count, 0);
  ui.sPerExample.textContent = examples > 0 ? formatBytes(view.rows.reduce((a, r) => a + r.bytesIn + r.bytesOut, 0) / examples) : '—';
  ui.sTasks.innerHTML = j ? `${formatCount(j.tasks.done)} <small>${j.tasks.leased} out · ${j.tasks.pending} waiting</small>` : '—';
  ui.sRejected.textContent = j ? `${j.rejectedResults} · ${j.lateResults}` : '—';
  // examples the coordinator recomputed to check results, against those counted
  const t = j?.trust;
  ui.sChecking.innerHTML = t
    ? t.verification === 'off'
      ? `off <small>${t.aggregation}</small>`
      : `${(t.overhead * 100).toFixed(1)}% <small>${t.checks} checks · ${t.failures} failed · ${t.aggregation}</small>`
    : '—';
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

// ---------------------------------------------------------------- charts (admin-charts.ts)

function drawCharts(): void {
  renderCharts(view.rows, view.evals, view.xMode);
}

function setXMode(mode: XMode): void {
  view.xMode = mode;
  ui.xIter.classList.toggle('on', mode === 'iteration');
  ui.xTime.classList.toggle('on', mode === 'time');
  drawCharts();
}
ui.xIter.addEventListener('click', () => setXMode('iteration'));
ui.xTime.addEventListener('click', () => setXMode('time'));
window.addEventListener('resize', resizeCharts);

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
  drawConfusion(ui.confusion, ui.confusionCaption, ev);
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
  ui.workersBody.replaceChildren(...workerRows(view.workers, Date.now(), (w) => void banOrLift(w)));
  const active = view.workers.filter((w) => w.state === 'active').length;
  ui.workersCaption.textContent = `· ${active} active of ${view.workers.length}`;
}

async function banOrLift(w: WorkerRow): Promise<void> {
  try {
    await api<WorkerRow>(w.trust?.banned ? PATHS.admin.unban(w.id) : PATHS.admin.ban(w.id), { method: 'POST' });
    await refreshWorkers();
  } catch (e) {
    handleAuth(e);
  }
}

// ---------------------------------------------------------------- new job (admin-form.ts)

const formEls: JobFormElements = { form: ui.form, error: ui.formError, ok: ui.formOk };
fillFormDefaults(ui.form);

ui.form.addEventListener('submit', async (e) => {
  e.preventDefault();
  clearFormErrors(formEls);
  const { cfg, issues: local, startNow } = readJobForm(ui.form);
  if (local.length) return showFormErrors(formEls, local);
  try {
    const job = await api<JobSummary>(PATHS.admin.jobs, { method: 'POST', body: JSON.stringify(cfg) });
    let started = job;
    if (startNow) {
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
    if (err instanceof ApiFailure && err.status === 400 && err.body) return showFormErrors(formEls, issuesOf(err.body));
    ui.formError.textContent = err instanceof Error ? err.message : String(err);
  }
});

// ---------------------------------------------------------------- go

void open();
