/**
 * The poisoning run of issue 12 as a test: a job (784-64-10 on 3,000 MNIST
 * examples, 4 partitions) trained by two honest workers plus one
 * protocol-perfect Byzantine worker (the negated gradient scaled to the norm
 * bound: 90% test error on a coordinator that does not check) ends within
 * the clean run's test error; the Byzantine worker is banned, and the ledger
 * shows each of its tasks discarded and redone by an honest worker.
 */
import { describe, expect, it } from 'vitest';
import { benchJob, runScenario } from '../../../bench/byzantine/run.ts';

const job = benchJob({ partitions: 4, finetune: { epochs: 5, batchSize: 150 } });

describe('poisoning with verification by recomputation (default settings)', () => {
  it('two honest workers plus one Byzantine: the clean error, the cheater banned, none of its results counted', async () => {
    const clean = await runScenario({ workers: 2, byzantine: 0, job });
    let ledger: { byzantine: string[]; redone: boolean; leases: number } | null = null;
    const attacked = await runScenario({
      workers: 3,
      byzantine: 1,
      attack: 'bound',
      job,
      inspect: (coord, id, byz) => {
        const leases = coord.store.leasesOf(id);
        const tasks = coord.store.tasksOf(id);
        const mine = leases.filter((l) => byz.includes(l.worker_id));
        const doneBy = new Map(leases.filter((l) => l.state === 'done').map((l) => [l.task_id, l.worker_id]));
        ledger = {
          byzantine: [...new Set(mine.map((l) => l.state))],
          // every task it answered is done, by someone else
          redone: mine.filter((l) => l.state === 'discarded').every((l) => doneBy.has(l.task_id) && !byz.includes(doneBy.get(l.task_id)!)),
          leases: mine.length,
        };
        expect(tasks.every((t) => t.state === 'done')).toBe(true);
      },
    });
    console.log(`clean ${(100 * clean.testError).toFixed(2)}%, with a Byzantine worker ${(100 * attacked.testError).toFixed(2)}%; it was banned after ${attacked.resultsToBan.join(', ')} accepted uploads`);
    expect(attacked.rewritten).toBeGreaterThan(0);
    expect(Math.abs(attacked.testError - clean.testError)).toBeLessThanOrEqual(0.003);
    const row = attacked.workerRows.find((w) => w.id === attacked.byzantineIds[0])!;
    expect((row.trust as { banned: boolean }).banned).toBe(true);
    expect(ledger).not.toBeNull();
    // none of its results counted: its answered leases were all discarded (or returned at its ban), each task redone by an honest worker
    expect(ledger!.leases).toBeGreaterThan(0);
    expect(ledger!.byzantine.every((s) => s === 'discarded' || s === 'returned' || s === 'expired')).toBe(true);
    expect(ledger!.byzantine).toContain('discarded');
    expect(ledger!.redone).toBe(true);
    // the same attack on the same job with checking off: what the checks prevent
    const unchecked = await runScenario({ workers: 3, byzantine: 1, attack: 'bound', job: { ...job, verification: 'off' } });
    console.log(`with checking off: ${(100 * unchecked.testError).toFixed(2)}%`);
    expect(unchecked.testError).toBeGreaterThan(clean.testError + 0.2);
  }, 240_000);
});
