import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.js';
import { ConfigError } from '../../../src/core/config-error.js';
import { SlidingWindowThrottle } from '../../../src/queue/throttle.js';
import { RedisLayout } from '../../../src/store/redis-layout.js';
import { cleanPrefix, redisClient, testPrefix } from '../../helpers/redis.js';

// Issue 8.5: a 429's Retry-After is a shared "paused until" beside the throttle's log, set atomically
// (max of the existing and the new end) and checked in the same Lua call that grants a request, so no
// request of any process is granted before the pause ends.
describe('SlidingWindowThrottle pause (429 Retry-After, issue 8.5)', () => {
  const prefix = testPrefix('throttle-pause');
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

  it('a pause set through one connection holds every grant on another until it ends', async () => {
    const key = layout.throttle('prelude');
    const one = new SlidingWindowThrottle({
      redis: a,
      key,
      adaptKey: `${key}:adapt`,
      pauseKey: `${key}:pause`,
      limit: 1000,
      windowMs: 60_000,
    });
    const other = new SlidingWindowThrottle({
      redis: b,
      key,
      adaptKey: `${key}:adapt`,
      pauseKey: `${key}:pause`,
      limit: 1000,
      windowMs: 60_000,
    });
    expect((await other.tryAcquire()).granted).toBe(true);

    const { until, at } = await one.pause(400);
    expect(until - at).toBe(400);
    const refused = await other.tryAcquire();
    expect(refused.granted).toBe(false);
    if (!refused.granted) {
      expect(refused.waitMs).toBeGreaterThan(0);
      expect(refused.waitMs).toBeLessThanOrEqual(400);
    }
    // Several waiters at once: every grant (Redis clock) comes at or after the pause's end.
    const grants = await Promise.all([other.acquire(), other.acquire(), one.acquire()]);
    for (const g of grants) expect(g).toBeGreaterThanOrEqual(until);
  });

  it('a shorter pause never shortens a longer one (max of existing and new)', async () => {
    const key = layout.throttle('zephr');
    const th = new SlidingWindowThrottle({
      redis: a,
      key,
      adaptKey: `${key}:adapt`,
      pauseKey: `${key}:pause`,
      limit: 1000,
    });
    const long = await th.pause(5_000);
    const short = await th.pause(100);
    expect(short.until).toBe(long.until);
    const r = await th.tryAcquire();
    expect(r.granted).toBe(false);
    if (!r.granted) expect(r.waitMs).toBeGreaterThan(4_000);
    // The pause key expires by itself after the wait (plus a second): no debris.
    const pttl = await a.pttl(`${key}:pause`);
    expect(pttl).toBeGreaterThan(4_000);
    expect(pttl).toBeLessThanOrEqual(6_000);
  });

  it('the throttle function connectors get carries pause()', async () => {
    const th = new SlidingWindowThrottle({
      redis: a,
      key: layout.throttle('sunshine'),
      adaptKey: layout.throttleAdapt('sunshine'),
      pauseKey: layout.throttlePause('sunshine'),
      limit: 10,
    });
    expect(typeof th.throttle.pause).toBe('function');
  });
});

describe('RATE_LIMIT_MAX_WAIT (issue 8.3)', () => {
  const base = { SOURCE_URL: 'http://127.0.0.1:4100', SOURCE_USERNAME: 'u', SOURCE_PASSWORD: 'p' };

  it('defaults to 15 minutes and parses like the other durations', () => {
    expect(loadConfig(base).sync.rateLimitMaxWaitMs).toBe(15 * 60_000);
    expect(loadConfig({ ...base, RATE_LIMIT_MAX_WAIT: '30m' }).sync.rateLimitMaxWaitMs).toBe(1_800_000);
    expect(loadConfig({ ...base, RATE_LIMIT_MAX_WAIT: '90' }).sync.rateLimitMaxWaitMs).toBe(90_000);
  });

  it('a bad value is a ConfigError naming the variable', () => {
    for (const bad of ['soon', '-5m', '1w']) {
      let err: unknown;
      try {
        loadConfig({ ...base, RATE_LIMIT_MAX_WAIT: bad });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).problems.join('\n')).toMatch(/RATE_LIMIT_MAX_WAIT/);
    }
  });
});
