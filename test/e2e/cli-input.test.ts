import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, runCli as cli } from '../helpers/cli.js';
import { cleanPrefix, keysOf, REDIS_URL, redisClient, testPrefix } from '../helpers/redis.js';

/** Issue 8.9 (CLI parts): bad input is a usage error (exit 2) naming what is wrong, before any work. */
describe.skipIf(!existsSync(CLI))('CLI input checks', () => {
  const prefix = testPrefix('e2e-input');
  let redis: Redis;
  // A complete configuration; nothing listens on these loopback ports and nothing here needs it to.
  const env = {
    REDIS_URL,
    PROFILE_SYNC_PREFIX: prefix,
    LOG_LEVEL: 'error',
    SOURCE_URL: 'http://127.0.0.1:9',
    SOURCE_USERNAME: 'u',
    SOURCE_PASSWORD: 'p',
    ZEPHR_URL: 'http://127.0.0.1:9',
    ZEPHR_APP_ID: 'app',
    ZEPHR_JWT_SECRET: 'jwt-secret-value',
  };

  beforeAll(() => {
    redis = redisClient();
  });
  afterAll(async () => {
    await cleanPrefix(redis, prefix);
    await redis.quit();
  });

  it.each([
    ['forget', ['forget', '']],
    ['sync-user', ['sync-user', '']],
    ['history', ['history', '']],
    ['forget (blank)', ['forget', '  ']],
  ])('%s with an empty user id exits 2', async (_, args) => {
    const r = await cli(args, env);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('<userId>: empty user id');
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('retry-failed --run nonexistent: exit 2, "no such run"', async () => {
    const r = await cli(['retry-failed', '--run', 'nonexistent'], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no such run nonexistent');
  });

  it('retry-failed --target foo names --target', async () => {
    const r = await cli(['retry-failed', '--target', 'foo'], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--target: unknown target 'foo'/);
    expect(r.stderr).not.toContain('--targets');
  });

  it('backfill --plan into a missing directory is refused before the run starts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ps-plan-'));
    const plan = join(dir, 'missing', 'plan.jsonl');
    const own = testPrefix('e2e-plan');
    const r = await cli(['backfill', '--dry-run', '--plan', plan], { ...env, PROFILE_SYNC_PREFIX: own });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^profile-sync: --plan: cannot write .*missing.* does not exist/m);
    expect(r.stderr).not.toContain('started');
    expect(await keysOf(redis, own)).toEqual([]); // not even a connection: no run, no queue
    await cleanPrefix(redis, own);
  });

  it('config check with an invalid SYNC_SCHEDULE exits 2 naming it', async () => {
    const r = await cli(['config', 'check'], { ...env, SYNC_SCHEDULE: '61 * * * *' });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('SYNC_SCHEDULE');
  });
});
