/**
 * The token bucket (coordinator/rate-limit.ts) on a fake clock: a burst,
 * then the sustained rate, the wait it answers, refill capped at the burst,
 * keys independent, and old buckets swept.
 */
import { describe, expect, it } from 'vitest';
import { RateLimiter } from '../../../coordinator/http/middleware/rate-limit.ts';

function clocked(perSecond: number, burst: number): { limiter: RateLimiter; advance: (ms: number) => void } {
  let now = 1_000_000;
  return { limiter: new RateLimiter({ perSecond, burst }, () => now), advance: (ms) => void (now += ms) };
}

describe('RateLimiter', () => {
  it('allows a burst, then answers the wait until the next token', () => {
    const { limiter, advance } = clocked(10, 3);
    expect([limiter.take('w'), limiter.take('w'), limiter.take('w')]).toEqual([0, 0, 0]);
    expect(limiter.take('w')).toBe(100); // one token every 100 ms at 10/s
    advance(40);
    expect(limiter.take('w')).toBe(60);
    advance(60);
    expect(limiter.take('w')).toBe(0);
    expect(limiter.take('w')).toBe(100);
  });

  it('a refused request spends nothing: waiting the answered time is enough', () => {
    const { limiter, advance } = clocked(2, 1);
    expect(limiter.take('w')).toBe(0);
    for (let i = 0; i < 5; i++) expect(limiter.take('w')).toBe(500);
    advance(500);
    expect(limiter.take('w')).toBe(0);
  });

  it('sustains its rate over time and refills no further than the burst', () => {
    const { limiter, advance } = clocked(5, 2);
    let allowed = 0;
    for (let ms = 0; ms < 10_000; ms += 10) {
      if (limiter.take('w') === 0) allowed++;
      advance(10);
    }
    expect(allowed).toBeGreaterThanOrEqual(50);
    expect(allowed).toBeLessThanOrEqual(52); // 5/s for 10 s, plus the first burst
    advance(60_000); // a long idle spell
    expect([limiter.take('w'), limiter.take('w'), limiter.take('w')]).toEqual([0, 0, 200]);
  });

  it('keeps keys apart', () => {
    const { limiter } = clocked(1, 1);
    expect(limiter.take('a')).toBe(0);
    expect(limiter.take('a')).toBeGreaterThan(0);
    expect(limiter.take('b')).toBe(0);
    expect(limiter.take('addr:10.0.0.1')).toBe(0);
  });

  it('sweeps buckets idle for a minute once it holds many, so a flood of keys cannot grow it forever', () => {
    const { limiter, advance } = clocked(1, 1);
    limiter.take('old');
    advance(61_000);
    for (let i = 0; i <= 100_000; i++) limiter.take(`k${i}`);
    const size = (limiter as unknown as { buckets: Map<string, unknown> }).buckets.size;
    expect(size).toBe(100_001); // "old" swept, the fresh keys kept
    expect(limiter.take('old')).toBe(0); // a new, full bucket
  });
});
