import { describe, expect, it } from 'vitest';
import { encodeResult, type ResultMeta } from '../../../core/protocol/index.ts';
import { checkNorm, validateResult, type IntakeInput, type LeaseInfo } from '../../../coordinator/engine/intake.ts';
import type { TaskSlot } from '../../../coordinator/engine/run.ts';

// One iteration of job "j" at iteration 3 with two tasks; worker "w1" holds lease "a" (task 0) and "b" (task 1).
const SHAPES = new Map([['W', [3, 2]], ['b', [3]]]);
const NOW = 1_000_000;

function lease(id: string, partition: number, over: Partial<LeaseInfo> = {}): LeaseInfo {
  return { id, jobId: 'j', taskId: `j:3:${partition}`, partition, iteration: 3, workerId: 'w1', deadline: NOW + 60_000, state: 'active', ...over };
}

function slot(partition: number, leaseId: string, expected: number): TaskSlot {
  return { id: `j:3:${partition}`, partition, state: 'leased', leaseId, workerId: 'w1', attempts: 1, expected };
}

function grads(scale = 1): Map<string, Float32Array> {
  return new Map([
    ['W', Float32Array.from([0.5, -1.25, 2, 0.125, -3, 1.5], (x) => x * scale)],
    ['b', Float32Array.from([0.25, -0.75, 1], (x) => x * scale)],
  ]);
}

function body(meta: Partial<ResultMeta> = {}, g = grads()): Uint8Array {
  return encodeResult({ taskId: 'j:3:0', leaseId: 'a', weightsVersion: 3, count: 7, loss: 4.5, correct: 2, ...meta }, g, SHAPES);
}

function input(over: Partial<IntakeInput> = {}): IntakeInput {
  const leases = new Map([['a', lease('a', 0)], ['b', lease('b', 1)]]);
  return {
    workerId: 'w1',
    lease: leases.get('a')!,
    lookup: (id) => leases.get(id),
    run: { id: 'j', iteration: 3, slots: [slot(0, 'a', 7), slot(1, 'b', 5)], gradShapes: SHAPES },
    body: body(),
    normBoundPerExample: 1e4,
    now: NOW,
    ...over,
  };
}

describe('validateResult', () => {
  it('accepts a result for an open lease and changes nothing', () => {
    const x = input();
    const before = JSON.stringify(x.run);
    const v = validateResult(x);
    expect(v.ok).toBe(true);
    if (!v.ok) return;
    expect(v.meta).toMatchObject({ leaseId: 'a', count: 7, loss: 4.5, correct: 2 });
    expect(v.answers.map((a) => a.slot.id)).toEqual(['j:3:0']);
    expect(Array.from(v.grads.get('W')!)).toEqual(Array.from(grads().get('W')!));
    expect(v.overdue).toEqual([]);
    expect(JSON.stringify(x.run)).toBe(before);
    expect(x.lease.state).toBe('active');
  });

  it('accepts a bundle whose count is the sum of its tasks', () => {
    const v = validateResult(input({ body: body({ count: 12, bundle: ['b'] }) }));
    expect(v.ok && v.answers.map((a) => a.lease.id)).toEqual(['a', 'b']);
  });

  const refusals: [string, Partial<IntakeInput>, string, RegExp, boolean][] = [
    ['a foreign lease', { workerId: 'w2' }, 'foreign-lease', /issued to another worker/, false],
    ['an answered lease', { lease: lease('a', 0, { state: 'done' }) }, 'duplicate-result', /already answered/, false],
    ['a returned lease', { lease: lease('a', 0, { state: 'returned' }) }, 'lease-expired', /was returned before the result came/, true],
    ['an iteration that is over', { lease: lease('a', 0, { iteration: 2 }) }, 'lease-expired', /iteration that is over/, true],
    ['stale weights', { body: body({ weightsVersion: 2 }) }, 'stale-weights', /weights version 2, the lease is for version 3/, false],
    ['a wrong count', { body: body({ count: 6 }) }, 'count-mismatch', /counts 6 examples, the task samples 7/, false],
    ['another lease in the metadata', { body: body({ leaseId: 'b' }) }, 'malformed-result', /metadata names lease b/, false],
    ['a bundle naming a lease twice', { body: body({ count: 12, bundle: ['b', 'b'] }) }, 'malformed-result', /names a lease twice/, false],
    ['a bundle naming an unknown lease', { body: body({ count: 12, bundle: ['zz'] }) }, 'unknown-lease', /lease zz, which was never issued/, false],
    ['a missing tensor', { body: encodeResult({ taskId: 'j:3:0', leaseId: 'a', weightsVersion: 3, count: 7, loss: 1, correct: 0 }, new Map([['W', grads().get('W')!]]), SHAPES) }, 'shape-mismatch', /lacks gradient "b"/, false],
    ['a non-finite value', { body: body({}, new Map([['W', Float32Array.from([0, 1, Number.NaN, 0, 0, 0])], ['b', new Float32Array(3)]])) }, 'non-finite', /gradient "W" holds NaN at index 2/, false],
    ['a norm over the bound', { body: body({}, grads(1e6)) }, 'norm-bound', /exceeds the bound/, false],
  ];
  for (const [what, over, code, detail, late] of refusals) {
    it(`refuses ${what} (${code})`, () => {
      const v = validateResult(input(over));
      expect(v.ok).toBe(false);
      if (v.ok) return;
      expect(v.code).toBe(code);
      expect(v.detail).toMatch(detail);
      expect(v.late).toBe(late);
    });
  }

  it('reports an overdue lease for the caller to expire, and leaves its state alone', () => {
    const x = input({ lease: lease('a', 0, { deadline: NOW - 1 }) });
    const v = validateResult(x);
    expect(v).toMatchObject({ ok: false, code: 'lease-expired', late: true });
    expect(v.overdue.map((l) => l.id)).toEqual(['a']);
    expect(x.lease.state).toBe('active');
  });
});

describe('checkNorm', () => {
  it('passes at the bound and refuses just over it', () => {
    const g = new Map([['x', Float32Array.from([3, 4])]]); // norm 5
    expect(checkNorm(g, 5, 1)).toBeNull();
    expect(checkNorm(g, 4.999, 1)).toMatchObject({ code: 'norm-bound' });
    expect(checkNorm(new Map([['x', Float32Array.from([1, Infinity])]]), 1e9, 1)).toEqual({ code: 'non-finite', detail: 'gradient "x" holds Infinity at index 1' });
  });
});
