/**
 * Schemas (valibot) for what crosses a boundary as JSON: the request bodies
 * the coordinator reads, and the helpers that turn valibot's issues into
 * `{field, message}` pairs a form or a log can show. The job config's schema
 * lives beside its type in model/config.ts and uses the same helpers.
 *
 * The binary result upload is not here: it keeps its hand-written, zero-copy
 * checks (coordinator.ts, protocol.ts's decodeResult).
 */
import * as v from 'valibot';
import {
  HASH_PATTERN,
  MAX_TASKS_PER_REQUEST,
  type FieldIssue,
  type HeartbeatRequest,
  type JobAction,
  type LeaseRequest,
  type RegisterRequest,
} from './protocol/index.ts';

export type { FieldIssue };

/** Most issues one error lists (a body can hold thousands of bad entries). */
const MAX_ISSUES = 20;

/** An input refused by a schema, with every problem by field. */
export class ValidationError extends Error {
  readonly issues: readonly FieldIssue[];
  constructor(what: string, issues: readonly FieldIssue[]) {
    const shown = issues.slice(0, MAX_ISSUES).map((i) => (i.field ? `${i.field}: ${i.message}` : i.message));
    if (issues.length > MAX_ISSUES) shown.push(`and ${issues.length - MAX_ISSUES} more`);
    super(`${what}: ${shown.join('; ')}`);
    this.name = 'ValidationError';
    this.issues = issues.slice(0, MAX_ISSUES);
  }
}

/**
 * valibot's issues as FieldIssues. The field is the path of object keys;
 * array indices go into the message ("[2] expected ..."), so a form with one
 * input for a list (layers) still finds its field.
 */
export function fieldIssues(issues: readonly v.BaseIssue<unknown>[]): FieldIssue[] {
  return issues.map((issue) => {
    const keys: string[] = [];
    let index = '';
    for (const p of issue.path ?? []) {
      if (p.type === 'array') index += `[${String(p.key)}]`;
      else keys.push(String(p.key));
    }
    return { field: keys.join('.'), message: index ? `${index} ${issue.message}` : issue.message };
  });
}

/** Parses `input` with `schema`, or throws ValidationError naming every problem (`what` opens the message). */
export function parseWith<S extends v.GenericSchema>(schema: S, input: unknown, what: string): v.InferOutput<S> {
  const r = v.safeParse(schema, input);
  if (!r.success) throw new ValidationError(what, fieldIssues(r.issues));
  return r.output;
}

// ------------------------------------------------------------ building blocks

export const isPlainObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

const objectMessage = (issue: v.BaseIssue<unknown>): string =>
  issue.kind === 'schema' && issue.expected === 'never' ? 'unknown field' : issue.input === undefined ? 'required' : 'expected an object';

/** A JSON object (not an array, not null) with these entries; unknown keys are dropped. */
export function record<E extends v.ObjectEntries>(entries: E) {
  return v.pipe(v.custom<Record<string, unknown>>(isPlainObject, 'expected an object'), v.object(entries, objectMessage));
}

/** A JSON object with exactly these entries: an unknown key is an issue named by it. */
export function strictRecord<E extends v.ObjectEntries>(entries: E) {
  return v.pipe(v.custom<Record<string, unknown>>(isPlainObject, 'expected an object'), v.strictObject(entries, objectMessage));
}

const got = (issue: v.BaseIssue<unknown>): string => (typeof issue.input === 'number' ? String(issue.input) : issue.received);

/** A finite number (NaN and infinities come from JS, never from JSON, but are refused too). */
export const finite = v.pipe(
  v.number((i) => `expected a finite number, got ${i.received}`),
  v.finite((i) => `expected a finite number, got ${i.received}`),
);

/** An integer in [lo, hi]. */
export function intIn(lo: number, hi: number) {
  return v.pipe(
    finite,
    v.check((n) => Number.isInteger(n) && n >= lo && n <= hi, (i) => `expected an integer in [${lo}, ${hi}], got ${got(i)}`),
  );
}

/** A number in [lo, hi], or (lo, hi] when `openLo`. */
export function realIn(lo: number, hi: number, openLo = false) {
  return v.pipe(
    finite,
    v.check((n) => (openLo ? n > lo : n >= lo) && n <= hi, (i) => `expected a number in ${openLo ? '(' : '['}${lo}, ${hi}], got ${got(i)}`),
  );
}

/** A list of SHA-256 hex hashes (the blobs a worker caches). */
export function hashList(max = 4096) {
  const message = `expected an array of at most ${max} SHA-256 hex hashes`;
  return v.pipe(v.array(v.pipe(v.string(message), v.regex(HASH_PATTERN, 'expected 64 lowercase hex digits')), message), v.maxLength(max, message));
}

// ------------------------------------------------------------ request bodies

const nonEmptyString = (max: number) =>
  v.pipe(
    v.string('expected a non-empty string'),
    v.minLength(1, 'expected a non-empty string'),
    v.transform((s) => s.slice(0, max)),
  );

/** POST /workers. The name is cut to 64 characters and the adapter to 200; a missing or odd adapter is "". */
export const RegisterBody = record({
  name: nonEmptyString(64),
  runtime: v.picklist(['deno', 'browser', 'node'], 'expected "deno", "browser" or "node"'),
  backend: v.picklist(['cpu', 'webgpu'], 'expected "cpu" or "webgpu"'),
  adapter: v.fallback(v.pipe(v.string(), v.transform((s) => s.slice(0, 200))), ''),
  cached: v.optional(hashList()),
});

/** A counter a worker reports: anything but a finite number >= 0 counts as 0 (stats are for display only). */
const stat = v.fallback(v.pipe(v.number(), v.finite(), v.minValue(0)), 0);
const NO_STATS = { tasksDone: 0, examplesDone: 0, examplesPerSecond: 0, bytesUp: 0, bytesDown: 0 };

/** POST /workers/heartbeat. */
export const HeartbeatBody = record({
  stats: v.fallback(record({ tasksDone: stat, examplesDone: stat, examplesPerSecond: stat, bytesUp: stat, bytesDown: stat }), NO_STATS),
  cached: v.optional(hashList()),
});

/** POST /leases. A waitMs that is not a finite number means no wait; the coordinator caps it. */
export const LeaseBody = record({
  cached: v.optional(hashList()),
  waitMs: v.fallback(finite, 0),
  maxTasks: v.optional(intIn(1, MAX_TASKS_PER_REQUEST), 1),
});

/** The action of POST /admin/jobs/:id/:action. */
export const JobActionParam = v.picklist(['start', 'pause', 'resume', 'cancel'], 'expected start, pause, resume or cancel');

/** POST /admin/jobs: any JSON object; model/config.ts's schema checks its fields. */
export const CreateJobBody = v.custom<Record<string, unknown>>(isPlainObject, 'expected a JSON object');

// The schemas' outputs are what protocol.ts says the coordinator receives.
type Satisfies<T extends U, U> = T;
export type RegisterBodyOut = Satisfies<v.InferOutput<typeof RegisterBody>, RegisterRequest>;
export type HeartbeatBodyOut = Satisfies<v.InferOutput<typeof HeartbeatBody>, HeartbeatRequest>;
export type LeaseBodyOut = Satisfies<v.InferOutput<typeof LeaseBody>, LeaseRequest>;
export type JobActionOut = Satisfies<v.InferOutput<typeof JobActionParam>, JobAction>;
