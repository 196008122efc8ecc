import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OpsServer } from '../../../src/http/server.js';
import type { Engine } from '../../../src/queue/engine.js';
import { startRedis, stopRedis } from '../../helpers/own-redis.js';
import { freePort, type OpsHarness, sample, startOpsHarness, until } from './ops-harness.js';

describe('ops server when Redis goes away and comes back', () => {
  let port: number;
  let redis: ChildProcess;
  let h: OpsHarness;
  let engine: Engine;
  let ops: OpsServer;

  beforeAll(async () => {
    port = await freePort();
    redis = await startRedis(port);
    h = await startOpsHarness({ label: 'outage', redisUrl: `redis://127.0.0.1:${port}` });
    engine = await h.engine();
    // With workers (issue 8.15): they used to hang in close() after their Redis restarted (2 runs of
    // 4 here, every time with a daemon SIGTERMed just after the restart); the test closes the engine
    // right after Redis came back. The same under a real daemon: test/reliability/redis-restart-daemon.test.ts.
    await engine.startWorkers({ concurrency: 1 });
    ops = await h.server(engine, { redisTimeoutMs: 500 });
  });
  afterAll(async () => {
    // Redis must be up for the engine and the prefix cleanup; the throwaway server goes in any case.
    try {
      if (redis.exitCode !== null || redis.signalCode !== null) redis = await startRedis(port);
      await h?.close();
    } finally {
      await stopRedis(redis);
    }
  });

  it('readyz flips to 503 naming Redis, healthz stays 200, metrics say redis_up 0; all recover', async () => {
    await until(async () => ((await h.get(`${ops.url}/readyz`)).status === 200 ? true : undefined), 'ready');
    await engine.syncQueues.sunshine!.pause(); // keep the jobs where they are
    await engine.syncQueues.sunshine!.addBulk(
      Array.from({ length: 3 }, (_, i) => ({ name: 'probe', data: { i } })),
    );
    let text = (await h.get(`${ops.url}/metrics`)).text;
    expect(sample(text, 'profile_sync_redis_up')).toBe(1);
    expect(sample(text, 'profile_sync_queue_jobs', { target: 'sunshine', state: 'paused' })).toBe(3);

    await stopRedis(redis);

    const down = await until(async () => {
      const r = await h.get(`${ops.url}/readyz`);
      return r.status === 503 ? r : undefined;
    }, 'readyz 503 after Redis died');
    const body = JSON.parse(down.text);
    expect(body.status).toBe('unavailable');
    expect(body.checks.redis.ok).toBe(false);
    expect(body.reasons[0]).toMatch(/^redis: (not connected|no PING answer)/);
    // Liveness is not about Redis: restarting every pod would not bring Redis back.
    const live = await h.get(`${ops.url}/healthz`);
    expect(live.status).toBe(200);
    expect(JSON.parse(live.text).status).toBe('ok');
    // A scrape still answers, says Redis is down and drops the queue depths it cannot read.
    const scrape = await h.get(`${ops.url}/metrics`);
    expect(scrape.status).toBe(200);
    text = scrape.text;
    expect(sample(text, 'profile_sync_redis_up')).toBe(0);
    expect(sample(text, 'profile_sync_queue_jobs', { target: 'sunshine', state: 'paused' })).toBeUndefined();
    // The run API answers 503 instead of hanging on the engine's queued connection.
    expect((await h.get(`${ops.url}/api/runs`)).status).toBe(503);
    // So do the HTML pages (issue 12.1): a 503 page, not a tab spinning for ever.
    for (const path of ['/runs', '/runs/20260101T000000Z-abcd', '/users/user-000001', '/targets']) {
      const p = await h.get(`${ops.url}${path}`);
      expect(p.status, path).toBe(503);
      expect(p.headers.get('content-type')).toMatch(/^text\/html/);
      expect(p.text).toContain('<title>Redis unavailable');
    }

    redis = await startRedis(port); // same port, empty (no persistence): a Redis that restarted

    await until(
      async () => ((await h.get(`${ops.url}/readyz`)).status === 200 ? true : undefined),
      'readyz 200 after Redis came back',
      20_000,
    );
    text = (await h.get(`${ops.url}/metrics`)).text;
    expect(sample(text, 'profile_sync_redis_up')).toBe(1);
    expect(sample(text, 'profile_sync_queue_jobs', { target: 'sunshine', state: 'waiting' })).toBe(0);
    // Closing now, while the workers' blocking connections may still wait to reconnect, must end
    // (it hung for ever: ioredis's disconnect() of a reconnecting client never emitted 'end').
    await engine.close();
    expect(engine.runningWorkers).toHaveLength(0);
  });
});
