import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Sandbox, startSandbox } from '../../src/sandbox/index.js';
import { CLI } from '../helpers/cli.js';
import { freePort, startRedis, stopRedis } from '../helpers/own-redis.js';
import { spawnCli, waitFor } from '../reliability/processes.js';

/**
 * Issue 8.11: Redis emptied (FLUSHALL) under a running backfill. Before: the command hung or died with
 * a stack trace, and jobs still in flight wrote a partial run hash back (counters, no status, no TTL)
 * that nothing ever ended or expired. Now: exit 1 with one clear line, and no key of the run is left.
 * On a redis-server of the test's own: the shared one is never flushed.
 */
describe.skipIf(!existsSync(CLI))('Redis emptied under a running backfill', () => {
  let server: ChildProcess;
  let port: number;
  let redis: Redis;
  let sandbox: Sandbox;
  const prefix = 'pst-emptied';

  beforeAll(async () => {
    port = await freePort();
    server = await startRedis(port);
    redis = new Redis(`redis://127.0.0.1:${port}`, { maxRetriesPerRequest: null });
    sandbox = await startSandbox({ port: 0, users: 300, rateLimit: null });
  });
  afterAll(async () => {
    await sandbox?.close();
    redis?.disconnect();
    if (server) await stopRedis(server);
  });

  it('ends with exit 1 and a clear error, and leaves no partial run record', async () => {
    const cli = spawnCli(['backfill'], {
      ...(sandbox.env as Record<string, string>),
      REDIS_URL: `redis://127.0.0.1:${port}`,
      PROFILE_SYNC_PREFIX: prefix,
      LOG_LEVEL: 'warn',
      // 300 users at 120 requests a minute per target: the run lasts minutes, the flush comes early.
      SUNSHINE_RATE_LIMIT: '120',
      ZEPHR_RATE_LIMIT: '120',
      PRELUDE_RATE_LIMIT: '120',
    });
    try {
      const line = await cli.waitForLine(/^run \S+ started/, 60_000);
      const runId = line.split(' ')[1]!;
      const runKey = `{${prefix}}:run:${runId}`;
      // Some jobs settled: the run is under way, workers are busy.
      await waitFor('a settled job', async () => Number(await redis.hget(runKey, 'settled')) >= 2, 60_000);
      await redis.flushall();
      const flushedAt = Date.now();

      const exit = await cli.exited;
      console.log(`exit ${exit.code} ${exit.at - flushedAt} ms after FLUSHALL`);
      const stderr = cli.lines.join('\n');
      expect(exit.code).toBe(1);
      expect(stderr).toContain(`run ${runId} vanished from Redis`);
      expect(stderr).not.toMatch(/\n\s+at /); // one line, no stack trace

      // Nothing of the run is left: no hash without status/TTL, no items/settled/pending lists.
      const left = await redis.keys(`{${prefix}}:run:${runId}*`);
      expect(left).toEqual([]);
      for (const key of await redis.keys(`{${prefix}}:run:*`)) {
        const status = (await redis.type(key)) === 'hash' ? await redis.hget(key, 'status') : 'n/a';
        expect({ key, status }).not.toEqual({ key, status: null });
      }
    } finally {
      cli.kill();
    }
  }, 180_000);
});
