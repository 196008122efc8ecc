import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Sandbox, startSandbox } from '../../src/sandbox/index.js';
import { freePort } from '../helpers/own-redis.js';
import { cleanPrefix, REDIS_URL, redisClient, testPrefix } from '../helpers/redis.js';
import { assertBuilt, spawnCli, waitFor } from '../reliability/processes.js';

describe('profile-sync daemon (built CLI)', () => {
  let sandbox: Sandbox;
  const prefix = testPrefix('daemon-cli');
  const redis = redisClient();

  beforeAll(async () => {
    assertBuilt();
    sandbox = await startSandbox({ port: 0, users: 5, rateLimit: null });
  });
  afterAll(async () => {
    await sandbox.close();
    await cleanPrefix(redis, prefix);
    await redis.quit();
  });

  const env = (extra: Record<string, string> = {}) => ({
    ...sandbox.env,
    REDIS_URL,
    PROFILE_SYNC_PREFIX: prefix,
    LOG_LEVEL: 'info',
    ...extra,
  });

  it('exits 2 naming SYNC_SCHEDULE for an invalid schedule, before touching Redis', async () => {
    const p = spawnCli(['daemon'], env({ SYNC_SCHEDULE: '61 * * * *', REDIS_URL: 'redis://127.0.0.1:1' }));
    const exit = await p.exited;
    expect(exit.code).toBe(2);
    expect(p.lines.join('\n')).toMatch(/SYNC_SCHEDULE: '61 \* \* \* \*' is not a valid cron expression/);
  });

  it('exits 2 for --concurrency 0', async () => {
    const p = spawnCli(['daemon', '--concurrency', '0'], env());
    expect((await p.exited).code).toBe(2);
    expect(p.lines.join('\n')).toContain('--concurrency must be an integer from 1 to 256');
  });

  it('serves the ops surface while running, then SIGTERM: exit 0, no secret in its output', async () => {
    const port = await freePort();
    const p = spawnCli(['daemon'], env({ OPS_PORT: String(port) }));
    try {
      await p.waitForLine(/"msg":"daemon started"/);
      const ready = await waitFor('readyz 200', async () => {
        const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null);
        return res?.status === 200
          ? ((await res.json()) as { checks: { workers: Record<string, boolean> } })
          : false;
      });
      expect(Object.keys(ready.checks.workers).sort()).toEqual([
        'scan',
        'sync-prelude',
        'sync-sunshine',
        'sync-zephr',
      ]);
      p.child.kill('SIGTERM');
      expect((await p.exited).code).toBe(0);
      expect(p.lines.some((l) => l.includes('"msg":"daemon stopped cleanly"'))).toBe(true);
      const all = p.lines.join('\n');
      for (const secret of ['SOURCE_PASSWORD', 'SUNSHINE_API_TOKEN', 'ZEPHR_JWT_SECRET', 'PRELUDE_API_KEY'])
        expect(all).not.toContain(sandbox.env[secret]!);
    } finally {
      p.kill();
    }
  });
});
