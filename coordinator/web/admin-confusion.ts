/**
 * The admin page's confusion matrix: a K x K table of one test evaluation
 * (rows the true class, columns the predicted), the diagonal shaded green by
 * the share of its row, the rest red by its count against the largest error.
 */
import type { EvaluationPoint } from './admin-charts.ts';

/** Draws the confusion matrix of one evaluation into box, its iteration and test error into caption; without one, says so. */
export function drawConfusion(box: HTMLElement, caption: HTMLElement, ev: EvaluationPoint | null): void {
  const m = ev?.confusion;
  if (!ev || !m) {
    box.innerHTML = '<p class="muted">No test evaluation yet.</p>';
    caption.textContent = '';
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
  box.replaceChildren(table);
  caption.textContent = `· iteration ${ev.iteration}, test error ${(ev.testError * 100).toFixed(2)}%`;
}
