/**
 * The Byzantine benchmark: 16 simulated workers in one process (the real
 * worker loop on the CPU backend, real gradients, the real coordinator API
 * through app.request()), 0, 3 and 5 of them Byzantine, every attack of
 * bench/byzantine/attacks.ts; the final test error of a small job
 * (784-64-10 on 3,000 MNIST examples) against the clean run's.
 *
 *   npx tsx bench/byzantine.ts [--attacks sign-flip,bound,...] [--byzantine 3,5] [--workers 16] [--epochs 10] [--json FILE] [--job-extra JSON]
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ATTACKS, type AttackName } from './byzantine/attacks.ts';
import { benchJob, runScenario, type ScenarioResult } from './byzantine/run.ts';

const { values } = parseArgs({
  options: {
    attacks: { type: 'string', default: ATTACKS.join(',') },
    byzantine: { type: 'string', default: '3,5' },
    workers: { type: 'string', default: '16' },
    epochs: { type: 'string', default: '10' },
    json: { type: 'string' },
    'job-extra': { type: 'string', default: '{}' },
  },
});
const attacks = values.attacks!.split(',').filter(Boolean) as AttackName[];
for (const a of attacks) if (!ATTACKS.includes(a)) throw new Error(`unknown attack "${a}": use ${ATTACKS.join(', ')}`);
const counts = values.byzantine!.split(',').map(Number);
const workers = Number(values.workers);
const job = benchJob({ finetune: { epochs: Number(values.epochs), batchSize: 300, learningRate: { start: 0.3, decay: 0.93, min: 0.01 } } });
const jobExtra = JSON.parse(values['job-extra']!) as Record<string, unknown>;
const log = (m: string): void => console.error(m);

const results: ScenarioResult[] = [];
const clean = await runScenario({ workers, byzantine: 0, job, jobExtra, log });
results.push(clean);
for (const attack of attacks) for (const m of counts) results.push(await runScenario({ workers, byzantine: m, attack, job, jobExtra, log }));

const pct = (x: number): string => `${(100 * x).toFixed(2)}%`;
console.log(`\n${workers} workers, job ${job.layers.join('-')} on ${job.trainLimit} examples, ${job.partitions} partitions; clean run: ${pct(clean.testError)} test error`);
console.log('| attack | Byzantine | test error | vs clean (points) | rewritten uploads | banned | results to ban (each) | checking overhead, whole / 2nd half | seconds |');
console.log('| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |');
for (const r of results) {
  const banned = r.workerRows.filter((w) => r.byzantineIds.includes(w.id as string) && (w.trust as { banned?: boolean } | null)?.banned === true).length;
  const toBan = r.resultsToBan.length ? r.resultsToBan.map((x) => (x === null ? '-' : String(x))).join(', ') : '';
  console.log(`| ${r.attack} | ${r.byzantine} | ${pct(r.testError)} | ${(100 * (r.testError - clean.testError)).toFixed(2)} | ${r.rewritten} | ${banned} | ${toBan} | ${pct(r.overhead)} / ${pct(r.steadyOverhead)} | ${r.seconds.toFixed(1)} |`);
}
if (values.json) writeFileSync(values.json, JSON.stringify(results.map(({ workerRows, summary, ...r }) => ({ ...r, workerRows, summary })), null, 2));
