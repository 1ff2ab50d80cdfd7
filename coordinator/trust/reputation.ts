/**
 * Worker reputation for adaptive replication, BOINC-style (Anderson,
 * "BOINC: a platform for volunteer computing", 2019, section on adaptive
 * replication). Pure: no clock, no randomness, no I/O; the caller passes
 * `now` and a uniform draw `u`.
 *
 * - A worker is checked (its result recomputed by someone else) on every
 *   result until it has `agreementsToTrust` consecutive agreements (N, 10 in
 *   BOINC); a worker with failures on its record needs N per failure more.
 *   Agreements count per kind of task (the phase: BOINC keeps its count per
 *   host and application version), so trust earned pre-training does not
 *   carry into fine-tuning, where a label-flipping cheater would start to
 *   lie.
 * - From then on a result is checked with probability
 *   max(minCheckProbability, 1 / consecutive): BOINC trusts a host with
 *   probability 1 - 1/CV after CV consecutive valid results.
 * - One failure resets the consecutive count to 0 and marks the worker.
 * - Failures count per worker and per registration source (the address
 *   prefix it registered from, `sourceOf`): a new worker from a source whose
 *   workers failed recently starts with those strikes, so a cheater who
 *   re-registers starts untrusted and is banned at its first failure.
 * - A worker whose failures plus its source's strikes reach `failuresToBan`
 *   is banned; an admin can lift the ban (the worker starts its probation
 *   again, with a clean record and its source's strikes forgotten).
 */

export interface TrustPolicy {
  /** consecutive agreements before a worker is checked only by sampling (BOINC: 10) */
  readonly agreementsToTrust: number;
  /** the least probability with which a trusted worker's result is still checked */
  readonly minCheckProbability: number;
  /** failures (own plus its source's recent strikes) that ban a worker */
  readonly failuresToBan: number;
  /** how long a source remembers a failure of one of its workers */
  readonly sourceMemoryMs: number;
}

export const DEFAULT_TRUST_POLICY: TrustPolicy = {
  agreementsToTrust: 10,
  minCheckProbability: 0.02,
  failuresToBan: 2,
  sourceMemoryMs: 24 * 3600_000,
};

export interface TrustRecord {
  readonly workerId: string;
  readonly source: string;
  /** results of it that were checked */
  checked: number;
  /** checks it passed */
  agreed: number;
  /** checks it failed (the third opinion went against it) */
  failed: number;
  /** agreements since its last failure (or registration) */
  consecutive: number;
  /** the same, per kind of task */
  consecutiveBy: Record<string, number>;
  /** strikes its source had when it registered */
  inherited: number;
  /** it failed a check, now or through its source */
  marked: boolean;
  banned: boolean;
  bannedAt: number | null;
  banReason: string | null;
}

export class TrustError extends Error {
  constructor(readonly code: 'unknown-worker' | 'bad-policy', detail: string) {
    super(detail);
    this.name = 'TrustError';
  }
}

/** The registration source of an address: its IPv4 /24 or IPv6 /48 (IPv4-mapped IPv6 as IPv4); 'unknown' when there is none. */
export function sourceOf(address: string | null | undefined): string {
  if (!address) return 'unknown';
  const a = address.trim().toLowerCase().replace(/^\[|\]$/g, '');
  const v4 = /^(?:::ffff:)?(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(a);
  if (v4) return `${v4[1]}.${v4[2]}.${v4[3]}.0/24`;
  if (a.includes(':')) {
    const [head = '', tail = ''] = a.split('::');
    const h = head ? head.split(':') : [];
    const t = tail ? tail.split(':') : [];
    const groups = a.includes('::') ? [...h, ...Array(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t] : h;
    return `${groups.slice(0, 3).map((g) => (g || '0').replace(/^0+(?=.)/, '')).join(':')}::/48`;
  }
  return a;
}

/**
 * Two workers are independent enough for one to check the other: different
 * workers, and not registered from the same source within `windowMs` of each
 * other.
 */
export function independent(a: { id: string; source: string; joinedAt: number }, b: { id: string; source: string; joinedAt: number }, windowMs: number): boolean {
  if (a.id === b.id) return false;
  return !(a.source === b.source && Math.abs(a.joinedAt - b.joinedAt) < windowMs);
}

function validPolicy(p: TrustPolicy): TrustPolicy {
  if (!Number.isInteger(p.agreementsToTrust) || p.agreementsToTrust < 1) throw new TrustError('bad-policy', `agreementsToTrust must be an integer >= 1, got ${p.agreementsToTrust}`);
  if (!(p.minCheckProbability > 0 && p.minCheckProbability <= 1)) throw new TrustError('bad-policy', `minCheckProbability must be in (0, 1], got ${p.minCheckProbability}`);
  if (!Number.isInteger(p.failuresToBan) || p.failuresToBan < 1) throw new TrustError('bad-policy', `failuresToBan must be an integer >= 1, got ${p.failuresToBan}`);
  if (!(p.sourceMemoryMs >= 0)) throw new TrustError('bad-policy', `sourceMemoryMs must be >= 0, got ${p.sourceMemoryMs}`);
  return p;
}

export interface Reputation {
  readonly policy: TrustPolicy;
  /** A worker registers from `source`: a fresh, untrusted record carrying the source's recent strikes. */
  register(workerId: string, source: string, now: number): TrustRecord;
  record(workerId: string): TrustRecord | undefined;
  records(): TrustRecord[];
  /** Strikes a source holds at `now`. */
  strikes(source: string, now: number): number;
  /** Probability that a result of this worker (of this kind of task, when given) is checked. */
  checkProbability(workerId: string, kind?: string): number;
  /** Whether to check this result, for a uniform draw u in [0, 1). */
  shouldCheck(workerId: string, u: number, kind?: string): boolean;
  /** Its checked result (of this kind) agreed with the recomputation. */
  agreed(workerId: string, kind?: string): TrustRecord;
  /** Its checked result lost: reset, mark, strike its source; bans it at the threshold. */
  failed(workerId: string, now: number): TrustRecord;
  /** The admin bans a worker. */
  ban(workerId: string, now: number, reason: string): TrustRecord;
  /** The admin lifts a ban: clean record (probation again), the source's strikes forgotten. */
  lift(workerId: string): TrustRecord;
  /** Takes back records and strikes saved through `TrustStore` (after a restart). */
  restore(records: readonly TrustRecord[], strikes: readonly { source: string; at: number }[]): void;
}

/** Where records and strikes are kept beyond the process (the engine's SQLite ledger). */
export interface TrustStore {
  saveRecord(r: TrustRecord): void;
  addStrike(source: string, at: number, since: number): void;
  clearStrikes(source: string): void;
}

export function createReputation(policy: TrustPolicy = DEFAULT_TRUST_POLICY, store?: TrustStore): Reputation {
  validPolicy(policy);
  const save = <R extends TrustRecord>(r: R): R => {
    store?.saveRecord(r);
    return r;
  };
  const byWorker = new Map<string, TrustRecord>();
  const sourceStrikes = new Map<string, number[]>();

  const get = (workerId: string): TrustRecord => {
    const r = byWorker.get(workerId);
    if (!r) throw new TrustError('unknown-worker', `no trust record for worker ${workerId}`);
    return r;
  };
  const strikes = (source: string, now: number): number => {
    const list = (sourceStrikes.get(source) ?? []).filter((t) => now - t < policy.sourceMemoryMs);
    if (list.length) sourceStrikes.set(source, list);
    else sourceStrikes.delete(source);
    return list.length;
  };
  /** agreements a worker needs before sampling starts */
  const probation = (r: TrustRecord): number => policy.agreementsToTrust * (1 + r.failed + r.inherited);
  const checkProbability = (workerId: string, kind?: string): number => {
    const r = get(workerId);
    const n = kind === undefined ? r.consecutive : (r.consecutiveBy[kind] ?? 0);
    if (r.banned || n < probation(r)) return 1;
    return Math.max(policy.minCheckProbability, 1 / n);
  };

  return {
    policy,
    register(workerId, source, now) {
      if (byWorker.has(workerId)) return byWorker.get(workerId)!;
      const inherited = strikes(source, now);
      const r: TrustRecord = {
        workerId, source, checked: 0, agreed: 0, failed: 0, consecutive: 0, consecutiveBy: {}, inherited,
        marked: inherited > 0, banned: false, bannedAt: null, banReason: null,
      };
      byWorker.set(workerId, r);
      return save(r);
    },
    record: (workerId) => byWorker.get(workerId),
    records: () => [...byWorker.values()],
    strikes,
    checkProbability,
    shouldCheck(workerId, u, kind) {
      if (!(u >= 0 && u < 1)) throw new RangeError(`shouldCheck: u must be a uniform draw in [0, 1), got ${u}`);
      return u < checkProbability(workerId, kind);
    },
    agreed(workerId, kind) {
      const r = get(workerId);
      r.checked++;
      r.agreed++;
      r.consecutive++;
      if (kind !== undefined) r.consecutiveBy[kind] = (r.consecutiveBy[kind] ?? 0) + 1;
      return save(r);
    },
    failed(workerId, now) {
      const r = get(workerId);
      r.checked++;
      r.failed++;
      r.consecutive = 0;
      r.consecutiveBy = {};
      r.marked = true;
      const list = sourceStrikes.get(r.source) ?? [];
      list.push(now);
      sourceStrikes.set(r.source, list);
      store?.addStrike(r.source, now, now - policy.sourceMemoryMs);
      if (!r.banned && r.failed + r.inherited >= policy.failuresToBan) {
        r.banned = true;
        r.bannedAt = now;
        r.banReason = `failed ${r.failed} check${r.failed === 1 ? '' : 's'}${r.inherited ? ` (source ${r.source} had ${r.inherited} strike${r.inherited === 1 ? '' : 's'})` : ''}`;
      }
      return save(r);
    },
    ban(workerId, now, reason) {
      const r = get(workerId);
      if (!r.banned) {
        r.banned = true;
        r.bannedAt = now;
        r.banReason = reason;
      }
      return save(r);
    },
    lift(workerId) {
      const r = get(workerId);
      r.banned = false;
      r.bannedAt = null;
      r.banReason = null;
      r.failed = 0;
      r.inherited = 0;
      r.consecutive = 0;
      r.consecutiveBy = {};
      sourceStrikes.delete(r.source);
      store?.clearStrikes(r.source);
      return save(r);
    },
    restore(records, strikes) {
      for (const r of records) byWorker.set(r.workerId, { ...r, consecutiveBy: { ...r.consecutiveBy } });
      for (const { source, at } of strikes) {
        const list = sourceStrikes.get(source) ?? [];
        list.push(at);
        sourceStrikes.set(source, list);
      }
    },
  };
}
