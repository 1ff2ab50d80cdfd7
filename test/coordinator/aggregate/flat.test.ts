import { createSummer, FlatAggregator } from '../../../coordinator/aggregate/index.ts';
import { aggregatorContract } from './common.case.ts';

aggregatorContract('flat', () => new FlatAggregator());

aggregatorContract('flat, WebAssembly SIMD', () => new FlatAggregator(createSummer('simd')));
