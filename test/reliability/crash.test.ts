import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { Engine } from '../../src/queue/engine.js';
import { type Sandbox, startSandbox } from '../../src/sandbox/index.js';
import { syncQueueName } from '../../src/store/redis-layout.js';
import { cleanPrefix, REDIS_URL, redisClient, testPrefix } from '../helpers/redis.js';
import { type Harness, inspect, mismatches } from '../integration/engine/harness.js';
import { assertBuilt, type CliProcess, spawnCli, waitFor } from './processes.js';

/**
 * Issue 4: "a worker killed with SIGKILL has its jobs taken over by another" and "SIGTERM/SIGINT: stop
 * taking jobs, finish or hand back in-flight ones within a timeout, close cleanly, lose nothing".
 * Two `daemon --no-schedule` processes share a backfill of the sandbox; one of them dies mid-run. The
 * run must complete anyway with every user correct in every target and no duplicate profile.
 */
describe('reliability: a worker dies mid-run', () => {
  let sandbox: Sandbox;
  let redis: Redis;
  let prefix: string;
  let procs: CliProcess[];
  let engine: Engine | undefined;

  beforeEach(async () => {
    assertBuilt();
    prefix = testPrefix('crash');
    procs = [];
    redis = redisClient();
  });
  afterEach(async () => {
    for (const p of procs) p.kill();
    await Promise.all(procs.map((p) => p.exited));
    await engine?.close();
    await sandbox.close();
    await cleanPrefix(redis, prefix);
    await redis.quit();
  });

  function envFor(extra: Record<string, string> = {}): Record<string, string> {
    return {
      ...sandbox.env,
      REDIS_URL,
      PROFILE_SYNC_PREFIX: prefix,
      LOG_LEVEL: 'info',
      OPS_PORT: '0', // two daemons on one host: no ops surface (it binds one port)
      SUNSHINE_RATE_LIMIT: '100000',
      ZEPHR_RATE_LIMIT: '100000',
      PRELUDE_RATE_LIMIT: '100000',
      // Short HTTP timeouts: the engine's lock is then its floor, 60 s (src/queue/engine.ts).
      HTTP_CONNECT_TIMEOUT_MS: '2000',
      HTTP_HEADERS_TIMEOUT_MS: '5000',
      HTTP_BODY_TIMEOUT_MS: '5000',
      ...extra,
    };
  }

  /** Every target answers `latencyMs` late, so jobs are in flight when a worker dies. */
  function slowTargets(latencyMs: number): void {
    for (const t of ['sunshine', 'zephr', 'prelude'] as const) {
      sandbox.sims[t].setFaults([{ kind: 'latency', rate: 1, latencyMs }]);
    }
  }

  async function startRun(env: Record<string, string>): Promise<string> {
    engine = await Engine.create({
      jobs: JOBS,
      config: loadConfig(env),
      logger: createLogger({ level: 'silent' }),
    });
    return runActions.startRun(engine, { kind: 'backfill' });
  }

  /** Every user right in every target, each Sunshine profile once. */
  async function expectAllCorrect(runId: string, env: Record<string, string>): Promise<void> {
    const unlinked = new Set(
      (await engine!.runs.items(runId, 0, 100_000))
        .filter((i) => i.outcome === 'unlinked')
        .map((i) => i.userId),
    );
    expect(await mismatches({ sandbox, env } as unknown as Harness, { unlinked })).toEqual([]);
    const sun = await inspect<{ profiles: { identifiers: { type: string; value: string }[] }[] }>(
      sandbox.urls.sunshine,
      'state',
    );
    const perUser = new Map<string, number>();
    for (const p of sun.profiles) {
      const ext = p.identifiers.find((i) => i.type === 'external_id')?.value;
      if (ext) perUser.set(ext, (perUser.get(ext) ?? 0) + 1);
    }
    expect([...perUser].filter(([, n]) => n > 1)).toEqual([]);
  }

  it('SIGKILL: the other worker takes over the stalled jobs and the run completes correctly', async () => {
    sandbox = await startSandbox({ port: 0, users: 300, rateLimit: null });
    slowTargets(150);
    const env = envFor();
    const a = spawnCli(['daemon', '--no-schedule', '--concurrency', '4'], env);
    const b = spawnCli(['daemon', '--no-schedule', '--concurrency', '4'], env);
    procs.push(a, b);
    await Promise.all(procs.map((p) => p.waitForLine(/"msg":"daemon started"/)));

    const runId = await startRun(env);
    await waitFor('100 jobs settled', async () => ((await engine!.runs.get(runId))?.settled ?? 0) >= 100);
    a.child.kill('SIGKILL');
    const killedAt = Date.now();
    expect((await a.exited).signal).toBe('SIGKILL');

    const run = await runActions.waitForRun(engine!, runId, { pollMs: 250 });
    const recoveredAfterMs = Date.now() - killedAt;
    expect(run.status).toBe('completed');
    expect(run.settled).toBe(run.enqueued);
    for (const t of ['sunshine', 'zephr', 'prelude'] as const)
      expect(run.targets[t]!.outcomes.failed).toBe(0);
    await expectAllCorrect(runId, env);

    // The dead worker's jobs were taken over through stalled-job recovery, not run by chance.
    let stalled = 0;
    for (const t of ['sunshine', 'zephr', 'prelude'] as const) {
      const q = new Queue(syncQueueName(t), { connection: redis, prefix: engine!.layout.bullPrefix });
      for (const job of await q.getCompleted(0, 10_000)) if ((job?.stalledCounter ?? 0) > 0) stalled++;
      await q.close();
    }
    expect(stalled).toBeGreaterThan(0);
    // Recorded for docs/daemon.md (no assertion on time: figures go to bench/ and docs).
    console.info(
      `SIGKILL: ${stalled} stalled jobs recovered; run completed ${recoveredAfterMs} ms after the kill`,
    );
  }, 180_000);

  it('SIGTERM: exits 0 within SHUTDOWN_TIMEOUT_MS, hands its jobs back, the run completes', async () => {
    sandbox = await startSandbox({ port: 0, users: 60, rateLimit: null });
    // Each request takes 4 s against a 1 s shutdown timeout: jobs in flight at the signal cannot finish
    // before the timeout even on a loaded machine (with 1.2 s, a starved event loop let them finish and
    // the test saw nothing to hand back).
    slowTargets(4_000);
    const timeoutMs = 1_000;
    // Batches of 4 (jobs/sync-batch.ts): 15 jobs per target, more than the 12 slots, so both saturate.
    const env = envFor({ SHUTDOWN_TIMEOUT_MS: String(timeoutMs), SYNC_BATCH_SIZE: '4' });
    const a = spawnCli(['daemon', '--no-schedule', '--concurrency', '4'], env);
    const b = spawnCli(['daemon', '--no-schedule', '--concurrency', '8'], env);
    procs.push(a, b);
    await Promise.all(procs.map((p) => p.waitForLine(/"msg":"daemon started"/)));

    const runId = await startRun(env);
    await waitFor('6 jobs settled', async () => ((await engine!.runs.get(runId))?.settled ?? 0) >= 6);
    // Both daemons saturated (4 + 8 slots per target = 36 active jobs): daemon A certainly holds jobs in
    // flight when the signal comes. Without this, on a loaded machine A's worker.close() could outlast
    // the timeout with nothing in hand, and there would be nothing to hand back.
    await waitFor('both daemons busy', async () => {
      let active = 0;
      for (const t of ['sunshine', 'zephr', 'prelude'] as const) {
        const q = new Queue(syncQueueName(t), { connection: redis, prefix: engine!.layout.bullPrefix });
        active += await q.getActiveCount();
        await q.close();
      }
      return active >= 36;
    });
    const sentAt = Date.now();
    a.child.kill('SIGTERM');
    const exit = await a.exited;
    expect(exit.code).toBe(0);
    // No assertion on the time (issue 8.17): that the daemon stopped at SHUTDOWN_TIMEOUT_MS rather than
    // after its 4 s requests is shown by what it says below (not clean, jobs handed back). The figure
    // is printed for docs/daemon.md.
    console.info(`SIGTERM: daemon exited ${exit.at - sentAt} ms after the signal (timeout ${timeoutMs} ms)`);
    const stopped = JSON.parse(await a.waitForLine(/"msg":"daemon stopped/, 1_000)) as {
      clean: boolean;
      handedBack: number;
    };
    // Requests take 4 s and the timeout is 1 s: jobs were in flight and went back to the queue.
    expect(stopped.clean).toBe(false);
    expect(stopped.handedBack).toBeGreaterThan(0);

    const run = await runActions.waitForRun(engine!, runId, { pollMs: 250 });
    expect(run.status).toBe('completed');
    expect(run.settled).toBe(run.enqueued);
    for (const t of ['sunshine', 'zephr', 'prelude'] as const)
      expect(run.targets[t]!.outcomes.failed).toBe(0);
    await expectAllCorrect(runId, env);
  }, 180_000);
});

import { JOBS } from '../../jobs/index.js';
import * as runActions from '../../jobs/run-actions.js';
