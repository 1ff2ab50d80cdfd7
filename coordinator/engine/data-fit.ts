/**
 * Whether a job config fits its data set: the input layer is one unit per
 * pixel, the output layer one unit per class (labels 0..K-1). Checked when a
 * job is created, when it starts and when a restart resumes it; a config
 * that does not fit would fail every task, on every retry.
 */
import type { JobConfig } from '../../core/model/config.ts';
import type { Dataset } from '../../core/dataset.ts';

/** Classes in the data: the largest label plus one. */
function classCount(...sets: Dataset[]): number {
  let max = -1;
  for (const ds of sets) for (let i = 0; i < ds.labels.length; i++) if (ds.labels[i]! > max) max = ds.labels[i]!;
  return max + 1;
}

/** Every way the config does not fit the data, each naming the field, what it is and what the data needs; [] when it fits. */
export function dataFitIssues(cfg: JobConfig, data: { readonly train: Dataset; readonly test: Dataset }): string[] {
  const issues: string[] = [];
  const L = cfg.layers;
  const input = L[0]!;
  const output = L[L.length - 1]!;
  const { dim, rows, cols } = data.train;
  if (data.test.count > 0 && data.test.dim !== dim) issues.push(`the test set has ${data.test.dim} pixels per example, the training set ${dim}`);
  if (input !== dim) issues.push(`layers[0] is ${input}, the data has ${dim} pixels per example (${rows} x ${cols}): set layers[0] to ${dim}`);
  const K = classCount(data.train, data.test);
  if (output !== K) issues.push(`layers[${L.length - 1}] (the output layer) is ${output}, the data has ${K} classes (labels 0-${K - 1}): set it to ${K}`);
  return issues;
}
