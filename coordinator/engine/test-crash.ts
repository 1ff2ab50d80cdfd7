/**
 * A crash on purpose, for the tests that SIGKILL the coordinator inside a
 * window they could not hit by timing (test/e2e/hardening.test.ts): with
 * TESSERA_TEST_CRASH_AT=<point>:<iteration> in its environment, the process
 * kills itself (SIGKILL, no cleanup) when it reaches that point. Points:
 *
 *   before-evaluation:N   the evaluation after iteration N is computed, not yet stored
 *
 * Without the variable (production) this does nothing.
 */
export function crashPoint(point: string, iteration: number): void {
  const at = process.env.TESSERA_TEST_CRASH_AT;
  if (at && at === `${point}:${iteration}`) process.kill(process.pid, 'SIGKILL');
}
