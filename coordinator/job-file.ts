/**
 * `--job FILE [--start]`: the job a config file names, created once. Run
 * again with the same command on the same data folder (a supervisor
 * restarting the coordinator), it finds the job it created before (same
 * config) and resumes it rather than creating another: a running or paused
 * job was resumed by Coordinator.open already, a created one is started
 * (with --start), a done one is left done. A config that is invalid or does
 * not fit the data, and a start that another active job blocks, are
 * OperatorErrors (the file itself is read by cli/run-cli.ts's readJobFile).
 */
import { ConfigError, parseJobConfig, type JobConfig } from '../core/model/config.ts';
import type { JobSummary } from '../core/protocol/index.ts';
import type { Coordinator } from './engine/coordinator.ts';
import { datasetError, OperatorError } from './operator-error.ts';

function readConfig(file: string, input: unknown): JobConfig {
  try {
    return parseJobConfig(input);
  } catch (e) {
    if (e instanceof ConfigError) throw new OperatorError(`--job ${file} is not a valid job config (${e.message}): fix those fields`, { cause: e });
    throw e;
  }
}

/** A refusal of the engine (it carries an error code) as an OperatorError; anything else as it is. */
function refusal(what: string, fix: string, e: unknown): Error {
  const code = (e as { code?: unknown } | null)?.code;
  // the engine's codes are protocol ErrorCodes ('bad-request', 'conflict'); Node's are 'ENOENT' and the like
  if (e instanceof Error && typeof code === 'string' && /^[a-z][a-z-]*$/.test(code)) {
    return new OperatorError(`${what}: ${e.message}; ${fix}`, { cause: e });
  }
  return datasetError(e);
}

/** The job of `--job file` (its JSON `input`, read by readJobFile), found or created, and started when `start`. */
export async function jobFromFile(coord: Coordinator, file: string, input: unknown, start: boolean, log: (s: string) => void): Promise<JobSummary> {
  const cfg = readConfig(file, input);
  const same = JSON.stringify(cfg);
  const earlier = coord
    .jobs()
    .filter((j) => j.state !== 'cancelled' && j.state !== 'failed' && JSON.stringify(j.config) === same)
    .pop();
  let job = earlier;
  if (job) {
    log(`job ${job.id} from ${file} exists (${job.state}, iteration ${job.iteration} of ${job.totalIterations})${job.state === 'running' || job.state === 'paused' ? ': resumed' : ''}`);
  } else {
    try {
      job = await coord.createJob(cfg);
    } catch (e) {
      throw refusal(`the job in ${file} cannot be created`, 'fix the job file', e);
    }
    log(`created job ${job.id} (${job.totalIterations} iterations)`);
  }
  if (start && job.state === 'created') {
    try {
      job = await coord.action(job.id, 'start');
    } catch (e) {
      throw refusal(`job ${job.id} cannot start`, 'cancel the active job first (admin page or API), or leave out --start', e);
    }
  }
  return job;
}
