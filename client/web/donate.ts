/**
 * The donate page: one button starts training in a Web Worker (donor.worker.ts,
 * behind Comlink); this file only renders the worker's snapshots and forwards
 * the volunteer's controls, so the page stays responsive while it computes.
 *
 * URL parameters (for links and tests): `backend=auto|webgpu|cpu`,
 * `threads=N` (CPU backend threads), `name=...` (shown on the admin page),
 * `autostart=1`, `coordinator=URL` (default: this page's origin).
 *
 * Several CPU threads need a cross-origin isolated page (the coordinator
 * sends COOP/COEP, coordinator/web/isolation.ts); where it is not, the
 * setting is fixed at one thread and says why.
 */
import * as Comlink from 'comlink';
import { PATHS, WORKER_HEADER, type PublicStatus } from '../../core/protocol/index.ts';
import type { BackendChoice, DonorApi, DonorSnapshot } from './donor-api.ts';
import { drawFilters } from './filters.ts';
import { formatBytes, formatCount, formatDuration, formatRate } from './format.ts';

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`donate page: element #${id} is missing from index.html`);
  return el as T;
};

const params = new URLSearchParams(location.search);
const coordinator = (params.get('coordinator') ?? location.origin).replace(/\/$/, '');
const store = (() => {
  try {
    return window.localStorage;
  } catch {
    return null;
  }
})();

const ui = {
  start: $<HTMLButtonElement>('start'),
  pause: $<HTMLButtonElement>('pause'),
  stop: $<HTMLButtonElement>('stop'),
  state: $('state'),
  message: $('message'),
  throttle: $<HTMLInputElement>('throttle'),
  throttleValue: $('throttle-value'),
  hiddenPause: $<HTMLInputElement>('hidden-pause'),
  backend: $<HTMLSelectElement>('backend'),
  threads: $<HTMLInputElement>('threads'),
  threadsHint: $('threads-hint'),
  backendName: $('backend-name'),
  adapter: $('adapter'),
  fallback: $('fallback'),
  job: $('job'),
  tasks: $('tasks'),
  rate: $('rate'),
  up: $('up'),
  down: $('down'),
  donated: $('donated'),
  filters: $<HTMLCanvasElement>('filters'),
  filtersEmpty: $('filters-empty'),
  filtersCaption: $('filters-caption'),
  cache: $('cache'),
  gridStatus: $('grid-status'),
};

// Restore the volunteer's settings; URL parameters win.
ui.throttle.value = store?.getItem('tessera.throttle') ?? ui.throttle.value;
ui.hiddenPause.checked = store?.getItem('tessera.hiddenPause') === '1';
const backendParam = params.get('backend');
if (backendParam === 'auto' || backendParam === 'webgpu' || backendParam === 'cpu') ui.backend.value = backendParam;
else ui.backend.value = store?.getItem('tessera.backend') ?? 'auto';

// CPU threads: the browser's cores by default (at most 64), one where memory cannot be shared.
const cores = Math.max(1, Math.min(64, navigator.hardwareConcurrency || 1));
ui.threads.max = String(cores);
if (!crossOriginIsolated) {
  ui.threads.value = '1';
  ui.threads.disabled = true;
  ui.threadsHint.textContent = 'One CPU thread: this page is not cross-origin isolated, so its threads cannot share memory.';
} else {
  const wanted = Number(params.get('threads') ?? store?.getItem('tessera.threads') ?? cores);
  ui.threads.value = String(Number.isInteger(wanted) && wanted >= 1 ? Math.min(wanted, cores) : cores);
}

function threadCount(): number {
  const n = Number(ui.threads.value);
  return Number.isInteger(n) && n >= 1 ? Math.min(n, cores) : 1;
}

const worker = new Worker(new URL('./donor.worker.ts', import.meta.url), { type: 'module', name: 'tessera-donor' });
const api = Comlink.wrap<DonorApi>(worker);
worker.addEventListener('error', (e) => showError(`the background worker failed: ${e.message || 'unknown error'}`));

let last: DonorSnapshot | null = null;
let autoPaused = false;
let filtersVersion: number | null = null;
let filtersBusy = false;

function throttleShare(): number {
  return Number(ui.throttle.value) / 100;
}

const STATE_CLASS: Record<DonorSnapshot['state'], string> = {
  idle: '',
  starting: 'info',
  running: 'good',
  waiting: 'info',
  paused: 'warn',
  offline: 'warn',
  stopped: '',
  error: 'bad',
};

function render(s: DonorSnapshot): void {
  const wasOffline = last?.state === 'offline';
  last = s;
  if (s.state === 'offline') ui.gridStatus.textContent = 'coordinator unreachable: retrying';
  else if (wasOffline) void refreshGrid();
  document.body.dataset.state = s.state;
  ui.state.textContent = s.state;
  ui.state.className = `badge ${STATE_CLASS[s.state]}`;
  ui.message.textContent = s.state === 'offline' && s.retryInMs !== null
    ? `${s.message} Retrying in ${Math.ceil(s.retryInMs / 1000)} s.`
    : s.message;
  ui.message.className = `message ${s.state === 'offline' ? 'offline' : s.state === 'error' ? 'error' : 'muted'}`;

  const active = s.state !== 'idle' && s.state !== 'stopped' && s.state !== 'error';
  ui.start.disabled = active;
  ui.start.textContent = s.state === 'idle' ? 'Start donating' : active ? 'Donating…' : 'Start again';
  ui.pause.disabled = !active || s.state === 'starting';
  ui.pause.textContent = s.state === 'paused' ? 'Resume' : 'Pause';
  ui.stop.disabled = !active;
  ui.backend.disabled = active;
  ui.threads.disabled = active || !crossOriginIsolated;

  ui.backendName.textContent = s.backend === 'webgpu' ? 'WebGPU' : s.backend === 'cpu' ? 'CPU' : '—';
  ui.backendName.dataset.backend = s.backend ?? '';
  ui.adapter.textContent = s.adapter ?? '—';
  ui.fallback.textContent = s.fallbackReason ? `WebGPU not used: ${s.fallbackReason}` : '';
  ui.fallback.classList.toggle('hidden', !s.fallbackReason);

  ui.cache.textContent = s.cacheHits ? `${s.cacheHits} partition${s.cacheHits === 1 ? '' : 's'} loaded from this browser (IndexedDB)` : 'IndexedDB';
  ui.cache.dataset.hits = String(s.cacheHits);
  ui.job.replaceChildren(s.job ? s.job.name : '—');
  if (s.job) {
    const sub = document.createElement('small');
    sub.textContent = `${s.job.phase} · iteration ${formatCount(s.job.iteration)}`;
    ui.job.append(sub);
  }
  ui.job.title = s.job ? `${s.job.id} · ${s.job.phase} · iteration ${s.job.iteration}` : '';
  ui.tasks.textContent = formatCount(s.tasksDone);
  ui.tasks.dataset.count = String(s.tasksDone);
  ui.rate.textContent = formatRate(s.examplesPerSecond);
  ui.up.textContent = formatBytes(s.bytesUp);
  ui.down.textContent = formatBytes(s.bytesDown);
  ui.donated.innerHTML = `${formatDuration(s.donatedMs)}${s.donatedMs > 0 ? ` <small>${Math.round((100 * s.computeMs) / Math.max(1, s.donatedMs))}% computing</small>` : ''}`;

  if (s.weightsVersion !== null && s.weightsVersion !== filtersVersion) void refreshFilters(s.weightsVersion);
}

async function refreshFilters(version: number): Promise<void> {
  if (filtersBusy) return;
  filtersBusy = true;
  try {
    const tiles = await api.filters(64);
    if (!tiles || tiles.n === 0) return;
    filtersVersion = version;
    drawFilters(ui.filters, tiles, 16, 2);
    ui.filtersEmpty.classList.add('hidden');
    ui.filtersCaption.textContent = `· ${tiles.n} of layer 1's units, weights version ${version}`;
  } catch {
    // the next snapshot tries again
  } finally {
    filtersBusy = false;
  }
}

function showError(msg: string): void {
  ui.message.textContent = msg;
  ui.message.className = 'message error';
  ui.state.textContent = 'error';
  ui.state.className = 'badge bad';
  document.body.dataset.state = 'error';
  ui.start.disabled = false;
}

async function start(): Promise<void> {
  ui.start.disabled = true;
  autoPaused = false;
  filtersVersion = null;
  const backend = ui.backend.value as BackendChoice;
  store?.setItem('tessera.backend', backend);
  const threads = threadCount();
  ui.threads.value = String(threads);
  if (crossOriginIsolated) store?.setItem('tessera.threads', String(threads));
  const name = params.get('name') ?? `browser-${Math.random().toString(36).slice(2, 8)}`;
  try {
    render(await api.start({ coordinator, backend, name, throttle: throttleShare(), threads }));
    setTimeout(() => void refreshGrid(), 1500);
  } catch (e) {
    showError(e instanceof Error ? e.message : String(e));
  }
}

ui.start.addEventListener('click', () => void start());
ui.pause.addEventListener('click', () => {
  autoPaused = false;
  void (last?.state === 'paused' ? api.resume() : api.pause());
});
ui.stop.addEventListener('click', () => {
  autoPaused = false;
  void api.stop();
});
ui.throttle.addEventListener('input', () => {
  ui.throttleValue.textContent = `${ui.throttle.value}%`;
  store?.setItem('tessera.throttle', ui.throttle.value);
  void api.setThrottle(throttleShare());
});
ui.throttleValue.textContent = `${ui.throttle.value}%`;
ui.hiddenPause.addEventListener('change', () => store?.setItem('tessera.hiddenPause', ui.hiddenPause.checked ? '1' : '0'));

// Pause while hidden, if asked; resume only what we paused ourselves.
document.addEventListener('visibilitychange', () => {
  if (!last) return;
  if (document.hidden && ui.hiddenPause.checked && (last.state === 'running' || last.state === 'waiting' || last.state === 'offline')) {
    autoPaused = true;
    void api.pause();
  } else if (!document.hidden && autoPaused) {
    autoPaused = false;
    void api.resume();
  }
});

// Closing the tab: hand the lease back and leave, with requests that outlive the page.
// (sendBeacon cannot carry the worker header, so fetch with keepalive.) If these
// never arrive, the lease simply expires and the task is issued again.
window.addEventListener('pagehide', () => {
  const leave = last?.leave;
  if (!leave) return;
  const init: RequestInit = { method: 'POST', keepalive: true, headers: { [WORKER_HEADER]: leave.token } };
  if (leave.leaseId) void fetch(coordinator + PATHS.returnLease(leave.leaseId), init).catch(() => {});
  void fetch(coordinator + PATHS.leave, init).catch(() => {});
});

// The grid's state in the header: one small request every 15 s.
async function refreshGrid(): Promise<void> {
  try {
    const res = await fetch(coordinator + PATHS.status, { cache: 'no-store' });
    if (!res.ok) throw new Error(String(res.status));
    const st = (await res.json()) as PublicStatus;
    ui.gridStatus.textContent = st.job
      ? `${st.job.name}: ${st.job.state}, ${st.job.phase}, iteration ${st.job.iteration} of ${st.job.totalIterations} · ${st.workers} worker${st.workers === 1 ? '' : 's'} online`
      : `no job running · ${st.workers} worker${st.workers === 1 ? '' : 's'} online`;
  } catch {
    ui.gridStatus.textContent = 'coordinator unreachable';
  }
}
void refreshGrid();
setInterval(() => void refreshGrid(), 15_000);

void api.subscribe(Comlink.proxy(render));
void api.snapshot().then(render);
if (params.get('autostart') === '1') void start();
