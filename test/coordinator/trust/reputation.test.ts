import { describe, expect, it } from 'vitest';
import { Store } from '../../../coordinator/engine/store.ts';
import { createReputation, DEFAULT_TRUST_POLICY, independent, sourceOf, TrustError, type TrustRecord, type TrustStore } from '../../../coordinator/trust/reputation.ts';

describe('sourceOf', () => {
  it('IPv4 /24, IPv4-mapped IPv6 as IPv4, IPv6 /48, unknown', () => {
    expect(sourceOf('203.0.113.7')).toBe('203.0.113.0/24');
    expect(sourceOf('::ffff:203.0.113.200')).toBe('203.0.113.0/24');
    expect(sourceOf('2001:db8:abcd:12::1')).toBe('2001:db8:abcd::/48');
    expect(sourceOf('2001:0db8::1')).toBe('2001:db8:0::/48');
    expect(sourceOf('::1')).toBe('0:0:0::/48');
    expect(sourceOf('')).toBe('unknown');
    expect(sourceOf(undefined)).toBe('unknown');
  });
});

describe('independent', () => {
  const a = { id: 'a', source: '10.0.0.0/24', joinedAt: 1000 };
  it('never the same worker, nor one from the same source within the window', () => {
    expect(independent(a, a, 60_000)).toBe(false);
    expect(independent(a, { id: 'b', source: a.source, joinedAt: 30_000 }, 60_000)).toBe(false);
    expect(independent(a, { id: 'b', source: a.source, joinedAt: 120_000 }, 60_000)).toBe(true);
    expect(independent(a, { id: 'b', source: '10.0.1.0/24', joinedAt: 1000 }, 60_000)).toBe(true);
  });
});

describe('Reputation', () => {
  const N = DEFAULT_TRUST_POLICY.agreementsToTrust;

  it('checks a new worker on every result until N consecutive agreements, then with probability max(min, 1/consecutive)', () => {
    const rep = createReputation();
    rep.register('w', 's', 0);
    for (let i = 0; i < N; i++) {
      expect(rep.checkProbability('w')).toBe(1);
      expect(rep.shouldCheck('w', 0.999)).toBe(true);
      rep.agreed('w');
    }
    expect(rep.checkProbability('w')).toBeCloseTo(1 / N, 12);
    expect(rep.shouldCheck('w', 0.5)).toBe(false);
    expect(rep.shouldCheck('w', 0.05)).toBe(true);
    for (let i = 0; i < 200; i++) rep.agreed('w');
    expect(rep.checkProbability('w')).toBe(DEFAULT_TRUST_POLICY.minCheckProbability);
    expect(rep.record('w')).toMatchObject({ checked: N + 200, agreed: N + 200, failed: 0, consecutive: N + 200, marked: false, banned: false });
  });

  it('one failure resets the record and marks it; a marked worker needs a longer probation; the threshold bans it', () => {
    const rep = createReputation();
    rep.register('w', 's', 0);
    for (let i = 0; i < 3 * N; i++) rep.agreed('w');
    const r = rep.failed('w', 5);
    expect(r).toMatchObject({ consecutive: 0, failed: 1, marked: true, banned: false });
    for (let i = 0; i < 2 * N - 1; i++) {
      rep.agreed('w');
      expect(rep.checkProbability('w')).toBe(1);
    }
    rep.agreed('w');
    expect(rep.checkProbability('w')).toBeLessThan(1);
    const b = rep.failed('w', 9);
    expect(b).toMatchObject({ banned: true, bannedAt: 9, failed: 2 });
    expect(b.banReason).toMatch(/failed 2 checks/);
    expect(rep.checkProbability('w')).toBe(1);
  });

  it('a cheater who re-registers from the same source starts untrusted with its strikes, and is banned at its first failure', () => {
    const rep = createReputation();
    rep.register('cheat1', '198.51.100.0/24', 0);
    rep.failed('cheat1', 10);
    expect(rep.record('cheat1')!.banned).toBe(false);
    const again = rep.register('cheat2', '198.51.100.0/24', 20);
    expect(again).toMatchObject({ inherited: 1, marked: true, consecutive: 0 });
    expect(rep.checkProbability('cheat2')).toBe(1);
    expect(rep.failed('cheat2', 30).banned).toBe(true);
    // another source is not affected
    expect(rep.register('other', '192.0.2.0/24', 20)).toMatchObject({ inherited: 0, marked: false });
    // the source forgets after its memory
    expect(rep.strikes('198.51.100.0/24', 30 + DEFAULT_TRUST_POLICY.sourceMemoryMs + 1)).toBe(0);
    expect(rep.register('later', '198.51.100.0/24', 30 + DEFAULT_TRUST_POLICY.sourceMemoryMs + 1).inherited).toBe(0);
  });

  it('an admin bans and lifts: lifting gives a clean record on probation and forgets the source strikes', () => {
    const rep = createReputation();
    rep.register('w', 's', 0);
    rep.failed('w', 1);
    rep.failed('w', 2);
    expect(rep.record('w')!.banned).toBe(true);
    const lifted = rep.lift('w');
    expect(lifted).toMatchObject({ banned: false, bannedAt: null, banReason: null, failed: 0, consecutive: 0, checked: 2 });
    expect(rep.checkProbability('w')).toBe(1);
    expect(rep.strikes('s', 3)).toBe(0);
    expect(rep.ban('w', 4, 'by the admin')).toMatchObject({ banned: true, bannedAt: 4, banReason: 'by the admin' });
    // registering an existing id keeps its record
    expect(rep.register('w', 's', 5).banned).toBe(true);
  });

  it('trust is earned per kind of task: agreements pre-training leave fine-tuning on probation; a failure resets every kind', () => {
    const rep = createReputation();
    rep.register('w', 's', 0);
    for (let i = 0; i < N; i++) rep.agreed('w', 'pretrain layer 0');
    expect(rep.checkProbability('w', 'pretrain layer 0')).toBeCloseTo(1 / N, 12);
    expect(rep.checkProbability('w', 'finetune')).toBe(1);
    for (let i = 0; i < N; i++) rep.agreed('w', 'finetune');
    expect(rep.checkProbability('w', 'finetune')).toBeCloseTo(1 / N, 12);
    expect(rep.record('w')!.consecutive).toBe(2 * N);
    rep.failed('w', 1);
    expect(rep.record('w')!.consecutiveBy).toEqual({});
    expect(rep.checkProbability('w', 'pretrain layer 0')).toBe(1);
  });

  it('refuses unknown workers, bad draws and bad policies without effect', () => {
    const rep = createReputation();
    expect(() => rep.agreed('nobody')).toThrow(TrustError);
    rep.register('w', 's', 0);
    expect(() => rep.shouldCheck('w', 1)).toThrow(/\[0, 1\)/);
    expect(() => rep.shouldCheck('w', Number.NaN)).toThrow(/\[0, 1\)/);
    expect(rep.record('w')!.checked).toBe(0);
    expect(() => createReputation({ ...DEFAULT_TRUST_POLICY, agreementsToTrust: 0 })).toThrow(/agreementsToTrust/);
    expect(() => createReputation({ ...DEFAULT_TRUST_POLICY, minCheckProbability: 0 })).toThrow(/minCheckProbability/);
    expect(() => createReputation({ ...DEFAULT_TRUST_POLICY, failuresToBan: 1.5 })).toThrow(/failuresToBan/);
  });

  it('steady-state checking overhead: honest workers with long records are checked at most 1/consecutive of the time', () => {
    const rep = createReputation();
    let u = 12345;
    const draw = () => ((u = (Math.imul(u, 1664525) + 1013904223) >>> 0) / 2 ** 32);
    for (let w = 0; w < 16; w++) rep.register(`w${w}`, `s${w}`, 0);
    let results = 0, checks = 0;
    for (let it = 0; it < 400; it++) {
      for (let w = 0; w < 16; w++) {
        const id = `w${w}`;
        const check = rep.shouldCheck(id, draw());
        if (it >= 100) {
          results++;
          if (check) checks++;
        }
        if (check) rep.agreed(id);
      }
    }
    // after 100 iterations the records are long: the overhead is far below 10%
    expect(checks / results).toBeLessThan(0.1);
    expect(checks).toBeGreaterThan(0);
  });
});

describe('Reputation kept in the ledger (TrustStore over SQLite)', () => {
  it('records, bans and source strikes come back in a new process; a lift clears the strikes there too', () => {
    const store = new Store(':memory:');
    const keep: TrustStore = {
      saveRecord: (r) => store.saveTrustRecord(r.workerId, JSON.stringify(r)),
      addStrike: (source, at, since) => store.addTrustStrike(source, at, since),
      clearStrikes: (source) => store.clearTrustStrikes(source),
    };
    const policy = { ...DEFAULT_TRUST_POLICY, failuresToBan: 2 };
    const a = createReputation(policy, keep);
    a.register('w1', '203.0.113.0/24', 1_000);
    a.agreed('w1', 'finetune');
    a.failed('w1', 2_000);
    a.failed('w1', 3_000);
    expect(a.record('w1')!.banned).toBe(true);

    const restart = (): ReturnType<typeof createReputation> => {
      const b = createReputation(policy, keep);
      b.restore(store.trustRecords().map((r) => JSON.parse(r) as TrustRecord), store.trustStrikes());
      return b;
    };
    const b = restart();
    expect(b.record('w1')).toMatchObject({ banned: true, checked: 3, agreed: 1, failed: 2, source: '203.0.113.0/24' });
    expect(b.strikes('203.0.113.0/24', 4_000)).toBe(2);
    // a newcomer from the same source after the restart inherits the strikes
    expect(b.register('w2', '203.0.113.0/24', 4_000)).toMatchObject({ inherited: 2, marked: true });
    b.lift('w1');
    const c = restart();
    expect(c.record('w1')).toMatchObject({ banned: false, failed: 0 });
    expect(c.strikes('203.0.113.0/24', 5_000)).toBe(0);
    store.close();
  });
});
