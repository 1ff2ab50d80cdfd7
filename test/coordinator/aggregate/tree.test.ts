import { describe, expect, it } from 'vitest';
import { TreeAggregator } from '../../../coordinator/aggregate/index.ts';
import { aggregatorContract } from './common.case.ts';

aggregatorContract('tree, fan-in 2', () => new TreeAggregator(2));
aggregatorContract('tree, fan-in 4', () => new TreeAggregator(4));
aggregatorContract('tree, fan-in 16', () => new TreeAggregator(16));

describe('TreeAggregator', () => {
  it('rejects a fan-in below 2', () => {
    expect(() => new TreeAggregator(1)).toThrow(/fan-in/);
  });
});
