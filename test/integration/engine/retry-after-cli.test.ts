import { existsSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Sandbox, startSandbox } from '../../../src/sandbox/index.js';
import { CLI, runCli } from '../../helpers/cli.js';
import { cleanPrefix, REDIS_URL, redisClient, testPrefix } from '../../helpers/redis.js';

// Issue 8.3, as an operator meets it: one Prelude 429 with `Retry-After: 86400` made `backfill` and
// `sync-user` hang for a day. Now they end, exit 1, and say the target was rate_limited.
describe.skipIf(!existsSync(CLI))('backfill / sync-user against a Retry-After of a day (issue 8.3)', () => {
  let sandbox: Sandbox;
  let redis: Redis;
  const prefixes: string[] = [];
  let base: Record<string, string | undefined>;
  const env = (label: string, extra: Record<string, string> = {}) => {
    const prefix = testPrefix(label);
    prefixes.push(prefix);
    return { ...base, PROFILE_SYNC_PREFIX: prefix, ...extra };
  };

  beforeAll(async () => {
    sandbox = await startSandbox({ port: 0, users: 12, rateLimit: null });
    redis = redisClient();
    base = {
      PATH: process.env.PATH,
      ...sandbox.env,
      REDIS_URL,
      LOG_LEVEL: 'warn',
      PRELUDE_RATE_LIMIT: '100000',
    };
    // One token a day, two at first: from the third request on, 429 with Retry-After ~86400.
    sandbox.sims.prelude.setRateLimit({ perMinute: 1 / 1440, burst: 2 });
  });
  afterAll(async () => {
    await sandbox.close();
    for (const p of prefixes) await cleanPrefix(redis, p);
    await redis.quit();
  });

  it('backfill ends with exit 1, prelude rate_limited in the summary, a warn with the asked and capped waits', async () => {
    const r = await runCli(['backfill', '--targets', 'prelude', '--json'], env('ra-backfill'), 60_000);
    expect(r.code).toBe(1);
    const s = JSON.parse(r.stdout) as { targets: Record<string, Record<string, unknown>> };
    expect(s.targets.prelude).toMatchObject({ stoppedBy: 'rate_limited' });
    expect(Number(s.targets.prelude!.failed)).toBeGreaterThan(0);
    expect(String(s.targets.prelude!.stopped)).toMatch(/RATE_LIMIT_MAX_WAIT \(15 min\)/);
    const warn = r.stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => String(l.msg).includes('more than RATE_LIMIT_MAX_WAIT'));
    expect(warn).toMatchObject({ level: 40, target: 'prelude', waitMs: 900_000, maxWaitMs: 900_000 });
    expect(Number(warn!.retryAfterMs)).toBeGreaterThan(23 * 3600_000);
  }, 90_000);

  it('sync-user ends with exit 1 and shows prelude RATE_LIMITED', async () => {
    const r = await runCli(['sync-user', 'user-000001', '--targets', 'prelude'], env('ra-sync-user'), 60_000);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/prelude \(RATE_LIMITED\)/);
    expect(r.stdout + r.stderr).toMatch(/prelude was RATE_LIMITED in this run/);
  }, 90_000);

  it('a bad RATE_LIMIT_MAX_WAIT exits 2 naming the variable', async () => {
    const r = await runCli(
      ['backfill', '--targets', 'prelude'],
      env('ra-bad', { RATE_LIMIT_MAX_WAIT: 'soon' }),
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/RATE_LIMIT_MAX_WAIT/);
  }, 30_000);
});
