/**
 * The admin page's new-job form: its fields filled from the coordinator's
 * defaults, its values read into a job config (numbers, layer sizes, text
 * fields), and config issues shown by field (an issue on a field the form
 * lacks goes to its nearest shown parent, else above the form).
 */
import { DEFAULT_JOB } from '../../core/model/config.ts';
import { SYNC_TRAINING, TRAINING_DEFAULTS, type TrainingConfig } from '../../core/model/training.ts';
import type { ApiError, FieldIssue } from '../../core/protocol/index.ts';

/** The form and the two lines beside it: the form's error and its success message. */
export interface JobFormElements {
  readonly form: HTMLFormElement;
  readonly error: HTMLElement;
  readonly ok: HTMLElement;
}

/** What the form holds: the job config to send, issues found before sending, and whether to start the job at once. */
export interface JobFormValues {
  readonly cfg: Record<string, unknown>;
  readonly issues: FieldIssue[];
  readonly startNow: boolean;
}

/**
 * The form starts from the coordinator's defaults (DEFAULT_JOB), so the two
 * never drift apart; the training fields from the default job's training
 * config, or where it has none (sync fp32), from local SGD's defaults, with
 * the mode and encodings of sync fp32.
 */
export function fillFormDefaults(form: HTMLFormElement): void {
  const formTraining: TrainingConfig = DEFAULT_JOB.training ?? { ...TRAINING_DEFAULTS, mode: SYNC_TRAINING.mode, up: SYNC_TRAINING.up, down: SYNC_TRAINING.down };
  for (const input of form.querySelectorAll<HTMLInputElement | HTMLSelectElement>('input[name], select[name]')) {
    let v: unknown = { ...DEFAULT_JOB, training: formTraining };
    for (const k of input.name.split('.')) v = (v as Record<string, unknown> | undefined)?.[k];
    if (typeof v === 'number' || typeof v === 'string') input.value = String(v);
    else if (Array.isArray(v)) input.value = v.join(',');
  }
}

/** Form fields whose values are strings, not numbers. */
const TEXT_FIELDS = new Set(['name', 'training.mode', 'training.up', 'training.down']);

/** Reads the form into a job config; sync mode with float32 both ways becomes a job without a training config (the original path). */
export function readJobForm(form: HTMLFormElement): JobFormValues {
  const fd = new FormData(form);
  const cfg: Record<string, unknown> = {};
  const issues: FieldIssue[] = [];
  for (const [name, raw] of fd) {
    if (name === 'startNow') continue;
    const value = String(raw).trim();
    if (value === '') continue;
    let v: unknown = value;
    if (name === 'layers') {
      const parts = value.split(/[\s,x-]+/).filter(Boolean).map(Number);
      if (parts.some((n) => !Number.isFinite(n))) issues.push({ field: name, message: 'expected sizes separated by commas, e.g. 784,500,10' });
      v = parts;
    } else if (!TEXT_FIELDS.has(name)) {
      v = Number(value);
      if (!Number.isFinite(v)) issues.push({ field: name, message: 'expected a number' });
    }
    setPath(cfg, name.split('.'), v);
  }
  const t = cfg.training as Record<string, unknown> | undefined;
  if (t && t.mode === 'sync' && t.up === 'f32' && t.down === 'f32') delete cfg.training;
  return { cfg, issues, startNow: Boolean(fd.get('startNow')) };
}

function setPath(obj: Record<string, unknown>, path: string[], v: unknown): void {
  let o = obj;
  for (const k of path.slice(0, -1)) o = (o[k] ??= {}) as Record<string, unknown>;
  o[path[path.length - 1]!] = v;
}

/** The config issues of a 400 answer (`issues: [{field, message}]`); without them, the detail as one issue for the whole form. */
export function issuesOf(body: ApiError): FieldIssue[] {
  const issues = Array.isArray(body.issues) ? body.issues.filter((i) => typeof i?.field === 'string' && typeof i?.message === 'string') : [];
  return issues.length ? issues : [{ field: '', message: body.detail }];
}

export function clearFormErrors(els: JobFormElements): void {
  els.error.textContent = '';
  els.ok.textContent = '';
  for (const l of els.form.querySelectorAll<HTMLElement>('label[data-field]')) {
    l.classList.remove('invalid');
    l.querySelector('.field-error')!.textContent = '';
  }
}

export function showFormErrors(els: JobFormElements, issues: readonly FieldIssue[]): void {
  const unplaced: string[] = [];
  for (const { field, message } of issues) {
    // an issue on a field the form lacks (e.g. learningRate.decay) goes to its nearest shown parent, else on top
    let label: HTMLElement | null = null;
    for (let f = field; f && !label; f = f.includes('.') ? f.slice(0, f.lastIndexOf('.')) : '') {
      label = els.form.querySelector<HTMLElement>(`label[data-field="${CSS.escape(f)}"]`);
    }
    if (!label) {
      unplaced.push(field ? `${field}: ${message}` : message);
      continue;
    }
    label.classList.add('invalid');
    const span = label.querySelector('.field-error')!;
    span.textContent = span.textContent ? `${span.textContent}; ${message}` : message;
  }
  els.error.textContent = unplaced.length ? unplaced.join('; ') : issues.length ? 'The job was not created: fix the fields marked below.' : '';
}
