/**
 * The admin page's workers table: a row per worker (state, runtime, backend,
 * adapter, tasks, rate, bytes, refusals, last seen, trust), with a ban / lift
 * button where the coordinator keeps trust records.
 */
import { formatAgo, formatBytes, formatCount, formatRate } from '../../client/web/format.ts';
import type { WorkerView as WorkerRow } from '../../core/protocol/index.ts';

/** One table row per worker, active ones first, then by last seen; onBanOrLift: the ban / lift button of a worker with a trust record. */
export function workerRows(workers: readonly WorkerRow[], now: number, onBanOrLift: (w: WorkerRow) => void): HTMLTableRowElement[] {
  const rows = [...workers].sort((a, b) => Number(b.state === 'active') - Number(a.state === 'active') || b.lastSeen - a.lastSeen);
  return rows.map((w) => {
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
      [trustLabel(w), 'trust'],
      [w.trust ? `${w.trust.checked} · ${w.trust.agreed} · ${w.trust.failed}` : '—', 'num'],
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
    if (w.trust) {
      const tb = document.createElement('span');
      tb.className = `badge ${w.trust.banned ? 'bad' : w.trust.checkProbability < 1 ? 'good' : 'warn'}`;
      tb.textContent = trustLabel(w);
      tb.title = w.trust.banned ? (w.trust.banReason ?? 'banned') : `source ${w.trust.source}; next result checked with probability ${w.trust.checkProbability.toFixed(2)}`;
      tr.cells[12]!.replaceChildren(tb);
      const act = document.createElement('button');
      act.type = 'button';
      act.className = 'small';
      act.textContent = w.trust.banned ? 'lift ban' : 'ban';
      act.addEventListener('click', () => onBanOrLift(w));
      tr.insertCell().append(act);
    } else tr.insertCell();
    return tr;
  });
}

/** probation (checked on every result), trusted (sampled), marked (failed a check), banned */
function trustLabel(w: WorkerRow): string {
  const t = w.trust;
  if (!t) return '—';
  if (t.banned) return 'banned';
  if (t.checkProbability < 1) return t.marked ? 'trusted, marked' : 'trusted';
  return t.marked ? 'probation, marked' : 'probation';
}
