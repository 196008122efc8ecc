import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Sandbox, startSandbox } from '../../src/sandbox/index.js';
import { RedisLayout, SCAN_QUEUE } from '../../src/store/redis-layout.js';
import { RunStore } from '../../src/store/run-store.js';
import { cleanPrefix, REDIS_URL, redisClient, testPrefix } from '../helpers/redis.js';
import { assertBuilt, type CliProcess, spawnCli, waitFor } from './processes.js';

/**
 * Issue 4: "three daemons: one scan per tick; a tick that finds the previous scan still running is
 * skipped and recorded". The schedule ticks every second (6-field cron); the source answers its user
 * pages 1.5 s late, so every scan outlives the next tick and skipped ticks happen in an ordinary run.
 */
const TICKS = 8;

describe('reliability: three daemons, one schedule', () => {
  let sandbox: Sandbox;
  let redis: Redis;
  const prefix = testPrefix('sched');
  const procs: CliProcess[] = [];

  beforeAll(async () => {
    assertBuilt();
    sandbox = await startSandbox({ port: 0, users: 20, rateLimit: null });
    sandbox.sims.source.setFaults([
      { kind: 'latency', rate: 1, latencyMs: 1_500, match: { method: 'GET', route: '/user' } },
    ]);
    redis = redisClient();
  });
  afterAll(async () => {
    for (const p of procs) p.kill();
    await Promise.all(procs.map((p) => p.exited));
    await sandbox.close();
    await cleanPrefix(redis, prefix);
    await redis.quit();
  });

  it(`each of ${TICKS}+ ticks makes exactly one scan or one skipped record`, async () => {
    const env: Record<string, string> = {
      SOURCE_URL: sandbox.env.SOURCE_URL!,
      SOURCE_USERNAME: sandbox.env.SOURCE_USERNAME!,
      SOURCE_PASSWORD: sandbox.env.SOURCE_PASSWORD!,
      SUNSHINE_URL: sandbox.env.SUNSHINE_URL!,
      SUNSHINE_EMAIL: sandbox.env.SUNSHINE_EMAIL!,
      SUNSHINE_API_TOKEN: sandbox.env.SUNSHINE_API_TOKEN!,
      SUNSHINE_RATE_LIMIT: '100000',
      SYNC_SCHEDULE: '* * * * * *',
      REDIS_URL,
      PROFILE_SYNC_PREFIX: prefix,
      LOG_LEVEL: 'info',
      OPS_PORT: '0', // three daemons on one host: no ops surface (it binds one port)
    };
    for (let i = 0; i < 3; i++) procs.push(spawnCli(['daemon'], env));
    await Promise.all(procs.map((p) => p.waitForLine(/"msg":"daemon started"/)));

    const layout = new RedisLayout(prefix);
    const runs = new RunStore(redis, layout);
    const tickOf = async (runId: string) => Number(await redis.hget(layout.run(runId), 'tick'));
    await waitFor(
      `${TICKS} ticks recorded`,
      async () => (await runs.list(500)).filter((r) => r.kind === 'scheduled').length >= TICKS,
      60_000,
      200,
    );
    for (const p of procs) p.child.kill('SIGTERM');
    const exits = await Promise.all(procs.map((p) => p.exited));
    expect(exits.map((e) => e.code)).toEqual([0, 0, 0]);

    const scheduled = (await runs.list(500)).filter((r) => r.kind === 'scheduled');
    const byTick = new Map<number, string[]>();
    for (const r of scheduled) {
      const tick = await tickOf(r.id);
      expect(tick).toBeGreaterThan(0);
      byTick.set(tick, [...(byTick.get(tick) ?? []), `${r.id}:${r.status}`]);
    }
    const doubled = [...byTick].filter(([, ids]) => ids.length > 1);
    expect(doubled).toEqual([]);
    expect(byTick.size).toBe(scheduled.length);

    // Runs started = scan jobs: one scan per started run, none for a skipped tick.
    const started = scheduled.filter((r) => r.status !== 'skipped');
    const skipped = scheduled.filter((r) => r.status === 'skipped');
    const scanQueue = new Queue(SCAN_QUEUE, { connection: redis, prefix: layout.bullPrefix });
    const scanIds = new Set<string>();
    try {
      for (const j of await scanQueue.getJobs(
        ['completed', 'active', 'wait', 'prioritized', 'delayed', 'failed'],
        0,
        1000,
      )) {
        if (j?.id) scanIds.add(j.id);
      }
    } finally {
      await scanQueue.close();
    }
    expect(started.length).toBeGreaterThanOrEqual(2);
    expect(skipped.length).toBeGreaterThanOrEqual(1);
    expect([...scanIds].sort()).toEqual(started.map((r) => `scan-${r.id}`).sort());
    for (const s of skipped) expect(s.error).toMatch(/still running/);
  }, 120_000);
});
