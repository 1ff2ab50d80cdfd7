import { describe, expect, it } from 'vitest';
import { MomentumSgd } from '../../core/model/optimizer.ts';

describe('momentum SGD with weight cost', () => {
  it('follows vel = m*vel - lr*(g/n + wc*W) and W += vel, weight cost on weights only', () => {
    const params = new Map([
      ['l.W', Float32Array.from([1, -2])],
      ['l.b', Float32Array.from([0.5])],
    ]);
    const opt = new MomentumSgd();
    const h = { learningRate: 0.1, momentum: 0.9, weightCost: 0.01 };
    const g = new Map([
      ['l.W', Float32Array.from([4, 8])],
      ['l.b', Float32Array.from([2])],
    ]);
    opt.step(params, g, 4, h);
    // vel = -0.1 * (g/4 + 0.01*W)
    const v1 = [-0.1 * (1 + 0.01), -0.1 * (2 - 0.02)];
    expect(params.get('l.W')![0]).toBeCloseTo(1 + v1[0]!, 6);
    expect(params.get('l.W')![1]).toBeCloseTo(-2 + v1[1]!, 6);
    expect(params.get('l.b')![0]).toBeCloseTo(0.5 - 0.05, 6);
    const w = params.get('l.W')![0]!;
    opt.step(params, g, 4, h);
    const v2 = 0.9 * v1[0]! - 0.1 * (1 + 0.01 * w);
    expect(params.get('l.W')![0]).toBeCloseTo(w + v2, 6);
    opt.reset();
    expect(opt.velocity.size).toBe(0);
  });

  it('refuses mismatched gradients and empty updates', () => {
    const params = new Map([['l.W', new Float32Array(2)]]);
    const opt = new MomentumSgd();
    const h = { learningRate: 0.1, momentum: 0, weightCost: 0 };
    expect(() => opt.step(params, new Map([['l.W', new Float32Array(3)]]), 1, h)).toThrow(/3 values/);
    expect(() => opt.step(params, new Map([['x.W', new Float32Array(2)]]), 1, h)).toThrow(/unknown/);
    expect(() => opt.step(params, new Map([['l.W', new Float32Array(2)]]), 0, h)).toThrow(/0 examples/);
  });
});
