import { existsSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLinkStore } from '../../src/store/links.js';
import { RedisLayout } from '../../src/store/redis-layout.js';
import { RunStore } from '../../src/store/run-store.js';
import { CLI, runCli as cli } from '../helpers/cli.js';
import { cleanPrefix, REDIS_URL, redisClient, testPrefix } from '../helpers/redis.js';

// Bug: `runs`, `report`, `history` and `links` loaded the full configuration and so demanded
// SOURCE_URL, although they only read Redis: an operator on a bastion without vendor credentials got
// exit 2 "SOURCE_URL: ...". They now load only REDIS_URL, PROFILE_SYNC_PREFIX and LOG_LEVEL.
describe.skipIf(!existsSync(CLI))('read-only commands need only REDIS_URL (no SOURCE_URL)', () => {
  const prefix = testPrefix('e2e-readonly');
  let redis: Redis;
  let runId: string;
  const env = () => ({ REDIS_URL, PROFILE_SYNC_PREFIX: prefix });

  beforeAll(async () => {
    redis = redisClient();
    const runs = new RunStore(redis, new RedisLayout(prefix));
    runId = await runs.create('backfill', {
      targets: ['zephr'],
      dryRun: false,
      full: false,
      showPii: false,
      plan: false,
    });
    await runs.record(runId, {
      settle: 'zephr/x',
      counters: [['zephr', 'created', 1]],
      items: [{ userId: 'user-ro-1', target: 'zephr', outcome: 'created', attempts: 1, requests: [], at: 1 }],
    });
    await runs.updateScan(runId, { status: 'done' });
    await runs.finish(runId, 'completed');
    await createLinkStore(redis, prefix).import([{ sourceId: 'user-ro-1', preludeUserId: 'prelude-1' }]);
  });
  afterAll(async () => {
    await cleanPrefix(redis, prefix);
    await redis.quit();
  });

  it('runs_without_SOURCE_URL: runs, report, history and links exit 0 with only REDIS_URL and a prefix', async () => {
    const list = await cli(['runs', '--json'], env());
    expect(list.stderr).not.toContain('SOURCE_URL');
    expect(list.code).toBe(0);
    const ids = (JSON.parse(list.stdout) as { runId: string }[]).map((r) => r.runId);
    expect(ids).toEqual([runId]);

    const text = await cli(['runs'], env());
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(runId);

    const report = await cli(['report', 'latest', '--json'], env());
    expect(report.code).toBe(0);
    expect(JSON.parse(report.stdout)).toMatchObject({ runId, status: 'completed', itemCount: 1 });

    const history = await cli(['history', 'user-ro-1', '--json'], env());
    expect(history.code).toBe(0);
    expect((JSON.parse(history.stdout) as { entries: { runId: string }[] }).entries[0]?.runId).toBe(runId);

    const count = await cli(['links', 'count', 'prelude'], env());
    expect(count.code).toBe(0);
    expect(count.stdout.trim()).toBe('1');
  });

  it('runs_without_SOURCE_URL: a bad REDIS_URL still exits 2 naming REDIS_URL (and not SOURCE_URL)', async () => {
    for (const args of [['runs'], ['links', 'count', 'prelude']]) {
      const r = await cli(args, { REDIS_URL: 'http://nope', PROFILE_SYNC_PREFIX: prefix });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('REDIS_URL');
      expect(r.stderr).not.toContain('SOURCE_URL');
    }
    const badPrefix = await cli(['runs'], { REDIS_URL, PROFILE_SYNC_PREFIX: 'a:b' });
    expect(badPrefix.code).toBe(2);
    expect(badPrefix.stderr).toContain('PROFILE_SYNC_PREFIX');
  });
});
