/**
 * The per-job trust policy: `verification` and `aggregation` in the job
 * config (defaults, refusals by field), and a job trained end to end with a
 * robust rule and with checking on.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, DEFAULT_JOB, parseJobConfig } from '../../../core/model/config.ts';
import { initParams, tensorShapes } from '../../../core/model/params.ts';
import { decodeWeights } from '../../../core/protocol/index.ts';
import { inProcessWorker, makeRig, SMALL_JOB, startJob, type Rig } from '../harness.ts';

describe('job trust policy', () => {
  let rig: Rig | undefined;
  afterEach(async () => {
    await rig?.close();
    rig = undefined;
  });

  it('defaults to verified checking and the exact sum; refuses unknown values by field', () => {
    expect(DEFAULT_JOB).toMatchObject({ verification: 'verified', aggregation: 'sum' });
    expect(parseJobConfig({ aggregation: 'median', verification: 'off' })).toMatchObject({ aggregation: 'median', verification: 'off' });
    try {
      parseJobConfig({ aggregation: 'mean', verification: 'sometimes' });
      throw new Error('accepted');
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      const fields = (e as ConfigError).issues.map((i) => i.field).sort();
      expect(fields).toEqual(['aggregation', 'verification']);
    }
  });

  for (const aggregation of ['median', 'centered-clip'] as const) {
    it(`a job with aggregation "${aggregation}" and checking on trains to the end; every result of the new workers is checked`, async () => {
      rig = await makeRig();
      const id = await startJob(rig, { ...SMALL_JOB, aggregation });
      const ws = await Promise.all([inProcessWorker(rig, 'a'), inProcessWorker(rig, 'b')]);
      await Promise.all(ws.map((w) => w.start()));
      await rig.coord.idle();
      const s = rig.coord.summary(id);
      expect(s.state).toBe('done');
      // SMALL_JOB barely trains (chance is 90%), and which worker sums which tasks varies, so a robust rule's
      // outcome does too: the job ran every iteration and moved the weights, all finite
      expect(s.iteration).toBe(s.totalIterations);
      expect(Number.isFinite(s.lastEvaluation!.testError)).toBe(true);
      const init = initParams(SMALL_JOB);
      let moved = 0;
      for (const [name, t] of rig.coord.activeParams() ?? decodeWeights(rig.coord.weightsOf(id), tensorShapes(SMALL_JOB)).params) {
        expect(t.every(Number.isFinite), name).toBe(true);
        moved = Math.max(moved, ...t.map((x, i) => Math.abs(x - init.get(name)![i]!)));
      }
      expect(moved).toBeGreaterThan(1e-3);
      expect(s.trust).toMatchObject({ verification: 'verified', aggregation, failures: 0 });
      // on probation (10 agreements per phase): far more checks than a trusted worker gets
      expect(s.trust.checks).toBeGreaterThanOrEqual(Math.min(20, s.totalIterations));
      expect(s.trust.checkedExamples).toBeGreaterThan(0);
      for (const w of rig.coord.workers()) expect(w.trust).toMatchObject({ failed: 0, banned: false });
    }, 60_000);
  }
});
