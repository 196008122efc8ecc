import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SlidingWindowThrottle } from '../../../src/queue/throttle.js';
import { RedisLayout } from '../../../src/store/redis-layout.js';
import { cleanPrefix, redisClient, testPrefix } from '../../helpers/redis.js';

// Issue 11.4: with a high limit one acquire call takes several grants, and the process's next
// requests use the spares (one Redis call instead of one per request). A 429 met here drops them at
// once; a pause set by another process holds this one from at most 100 ms (the spares' life) on.
describe('SlidingWindowThrottle spare grants (issue 11.4)', () => {
  const prefix = testPrefix('throttle-reserve');
  const layout = new RedisLayout(prefix);
  let a: Redis;
  let b: Redis;

  beforeAll(() => {
    a = redisClient();
    b = redisClient();
  });
  afterAll(async () => {
    await cleanPrefix(a, prefix);
    await Promise.all([a.quit(), b.quit()]);
  });

  function throttle(redis: Redis, name: string, limit: number): SlidingWindowThrottle {
    const key = `${layout.throttle('zephr')}-${name}`;
    return new SlidingWindowThrottle({
      redis,
      key,
      adaptKey: `${key}:adapt`,
      pauseKey: `${key}:pause`,
      limit,
      windowMs: 60_000,
    });
  }

  /** The log's entries, and how many Redis calls made them (a call's extra grants end in `.<n>`). */
  async function calls(name: string): Promise<{ grants: number; calls: number }> {
    const members = await a.zrange(`${layout.throttle('zephr')}-${name}`, '0', '-1');
    return { grants: members.length, calls: members.filter((m) => !m.includes('.')).length };
  }

  it('16 concurrent requests with a limit of 100,000: one Redis call grants them (64 at most, one per 1,000 of the limit); below 2,000 a window one call per grant, as before', async () => {
    const high = throttle(a, 'high', 100_000);
    await Promise.all(Array.from({ length: 16 }, () => high.acquire()));
    expect(await calls('high')).toEqual({ grants: 64, calls: 1 });
    const mid = throttle(a, 'mid', 20_000);
    await Promise.all(Array.from({ length: 16 }, () => mid.acquire()));
    expect(await calls('mid')).toEqual({ grants: 20, calls: 1 });
    const low = throttle(a, 'low', 1_000);
    await Promise.all(Array.from({ length: 5 }, () => low.acquire()));
    expect(await calls('low')).toEqual({ grants: 5, calls: 5 });
  });

  it("a 429 met in this process drops the spares at once; another process's pause holds it once its spares are 100 ms old", async () => {
    const local = throttle(a, 'local', 100_000);
    await local.acquire(); // 63 spares now
    await local.pause(5_000);
    expect((await local.tryAcquire()).granted).toBe(false);

    const one = throttle(a, 'remote', 100_000);
    const other = throttle(b, 'remote', 100_000);
    await one.acquire(); // 63 spares now
    await other.pause(5_000);
    await sleep(150);
    const next = await one.tryAcquire();
    expect(next.granted).toBe(false);
    if (!next.granted) expect(next.waitMs).toBeGreaterThan(4_000);
  });
});
