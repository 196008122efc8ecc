import type { ChildProcess } from 'node:child_process';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Sandbox, startSandbox } from '../../src/sandbox/index.js';
import { runCli } from '../helpers/cli.js';
import { freePort, startRedis, stopRedis } from '../helpers/own-redis.js';
import { assertBuilt, spawnCli, waitFor } from './processes.js';

/**
 * Issue 8.15: "Redis killed and restarted" under a real daemon (`node dist/cli.js daemon`), not just
 * the ops surface: after its Redis (a redis-server of the test's own, no persistence: it comes back
 * empty) is SIGKILLed and started again on the same port, the daemon must take and finish a new run,
 * and on SIGTERM stop cleanly (in-flight work done within SHUTDOWN_TIMEOUT_MS, nothing handed back),
 * exit 0. Workers used to hang in close() after such a restart.
 */
describe('a daemon whose Redis is killed and restarted', () => {
  let server: ChildProcess;
  let port: number;
  let redis: Redis;
  let sandbox: Sandbox;
  const prefix = 'pst-restart-daemon';

  beforeAll(async () => {
    assertBuilt();
    port = await freePort();
    server = await startRedis(port);
    redis = new Redis(`redis://127.0.0.1:${port}`, { maxRetriesPerRequest: null });
    redis.on('error', () => undefined); // the test's own client sees the outage too
    sandbox = await startSandbox({ port: 0, users: 20, rateLimit: null });
  });
  afterAll(async () => {
    await sandbox?.close();
    redis?.disconnect();
    if (server) await stopRedis(server);
  });

  const env = () => ({
    ...(sandbox.env as Record<string, string>),
    REDIS_URL: `redis://127.0.0.1:${port}`,
    PROFILE_SYNC_PREFIX: prefix,
    LOG_LEVEL: 'info',
    OPS_PORT: '0',
    SHUTDOWN_TIMEOUT_MS: '20000',
  });

  /** Enqueues a backfill for the daemon (`--enqueue-only`) and waits until its record says completed. */
  async function runThroughDaemon(): Promise<Record<string, string>> {
    const r = await runCli(['backfill', '--enqueue-only', '--json'], env(), 60_000);
    expect(r.code).toBe(0);
    const { runId } = JSON.parse(r.stdout) as { runId: string };
    return waitFor(
      `run ${runId} completed by the daemon`,
      async () => {
        const h = await redis.hgetall(`{${prefix}}:run:${runId}`);
        return h.status && h.status !== 'running' ? h : undefined;
      },
      90_000,
      200,
    );
  }

  it('processes a run after the restart and stops cleanly on SIGTERM (exit 0)', async () => {
    const daemon = spawnCli(['daemon', '--no-schedule'], env());
    try {
      await daemon.waitForLine(/"msg":"daemon started"/, 60_000);
      expect((await runThroughDaemon()).status).toBe('completed');

      const before = daemon.lines.length;
      await stopRedis(server);
      // The daemon noticed: its connections report the refused reconnects.
      await waitFor(
        'the daemon logging the lost Redis',
        () => daemon.lines.slice(before).some((l) => /ECONNREFUSED|Connection is closed/.test(l)),
        60_000,
      );
      server = await startRedis(port); // same port, empty
      await redis.ping();

      const after = await runThroughDaemon();
      expect(after.status).toBe('completed');
      expect(Number(after.settled)).toBeGreaterThan(0);

      daemon.child.kill('SIGTERM');
      const exit = await daemon.exited;
      const out = daemon.lines.join('\n');
      expect(exit.code).toBe(0);
      expect(out).toContain('"msg":"daemon stopped cleanly"');
      expect(out).not.toContain('handed back');
    } finally {
      daemon.kill();
    }
  }, 300_000);

  it('SIGTERM just after the restart (connections still reconnecting): exit 0, stopped cleanly', async () => {
    const daemon = spawnCli(['daemon', '--no-schedule'], env());
    try {
      await daemon.waitForLine(/"msg":"daemon started"/, 60_000);
      const before = daemon.lines.length;
      await stopRedis(server);
      // Long enough down for ioredis's reconnect delay to grow (50 ms more per attempt, up to 2 s).
      await waitFor(
        'several refused reconnects',
        () => daemon.lines.slice(before).filter((l) => /ECONNREFUSED/.test(l)).length >= 1,
        60_000,
      );
      await new Promise((r) => setTimeout(r, 3_000));
      server = await startRedis(port);
      const sent = Date.now();
      daemon.child.kill('SIGTERM');
      const exit = await daemon.exited;
      console.log(`daemon exit ${exit.code} ${exit.at - sent} ms after SIGTERM`);
      expect(exit.code).toBe(0);
      expect(daemon.lines.join('\n')).toContain('"msg":"daemon stopped cleanly"');
    } finally {
      daemon.kill();
    }
  }, 300_000);

  it('SIGTERM while Redis is still away: the daemon still exits 0 (hand-back bounded)', async () => {
    const daemon = spawnCli(['daemon', '--no-schedule'], { ...env(), SHUTDOWN_TIMEOUT_MS: '2000' });
    try {
      await daemon.waitForLine(/"msg":"daemon started"/, 60_000);
      const before = daemon.lines.length;
      await stopRedis(server);
      await waitFor(
        'the daemon logging the lost Redis',
        () => daemon.lines.slice(before).some((l) => /ECONNREFUSED/.test(l)),
        60_000,
      );
      // Down for a while, as in an outage (the scenario, not a wait for a result): every connection
      // is then between two reconnect attempts.
      await new Promise((r) => setTimeout(r, 3_000));
      const sent = Date.now();
      daemon.child.kill('SIGTERM');
      // Before: it never exited (the hand-back's commands waited for Redis for ever).
      const exit = await daemon.exited;
      console.log(`daemon exit ${exit.code} ${exit.at - sent} ms after SIGTERM, Redis down`);
      expect(exit.code).toBe(0);
      expect(daemon.lines.join('\n')).toMatch(
        /daemon stopped cleanly|Redis did not answer: in-flight jobs not handed back/,
      );
    } finally {
      daemon.kill();
      server = await startRedis(port);
    }
  }, 120_000);
});
