import { describe, expect, it } from 'vitest';
import { SyncError } from '../../../src/core/errors.js';
import { backoffStrategy, fullJitterDelay } from '../../../src/queue/backoff.js';

const policy = { baseMs: 2000, maxMs: 300_000 };

describe('full-jitter backoff', () => {
  it('draws uniformly below an exponential ceiling, capped', () => {
    const ceilings = [1, 2, 3, 4, 5, 6, 7, 8, 9].map((n) => fullJitterDelay(n, policy, () => 0.999999));
    expect(ceilings).toEqual([1999, 3999, 7999, 15999, 31999, 63999, 127999, 255999, 299999]);
    expect(fullJitterDelay(3, policy, () => 0)).toBe(0);
    expect(fullJitterDelay(3, policy, () => 0.5)).toBe(4000);
  });

  it("waits at least a transient error's Retry-After", async () => {
    const strategy = backoffStrategy(policy);
    const err = new SyncError('transient', '503', { retryAfterMs: 30_000 });
    for (let i = 0; i < 20; i++) expect(await strategy(1, 'full-jitter', err)).toBeGreaterThanOrEqual(30_000);
    const plain = await strategy(1, 'full-jitter', new Error('x'));
    expect(plain).toBeLessThan(2000);
  });
});
