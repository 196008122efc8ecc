import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Sandbox, startSandbox } from '../../src/sandbox/index.js';
import { CLI, runCli } from '../helpers/cli.js';
import { freePort, startRedis, stopRedis } from '../helpers/own-redis.js';
import { spawnCli } from '../reliability/processes.js';

/**
 * Issue 8.4: a wrong password in REDIS_URL made `backfill` reconnect for ever, printing the ioredis
 * command with the password (`HELLO 3 AUTH default <password>`) on every attempt. Every command that
 * opens Redis must end at once with exit 2, say "Redis refused the credentials", and print the
 * password nowhere. Against a redis-server of the test's own with `--requirepass`.
 */
const GOOD = 'good-pass-8c1f';
const WRONG = 'wr0ng-Secret-7a1e';

describe.skipIf(!existsSync(CLI))('a Redis that refuses the credentials', () => {
  let redis: ChildProcess;
  let port: number;
  let sandbox: Sandbox;
  let env: Record<string, string | undefined>;

  beforeAll(async () => {
    port = await freePort();
    redis = await startRedis(port, ['--requirepass', GOOD]);
    sandbox = await startSandbox({ port: 0, users: 5, rateLimit: null });
    env = {
      ...sandbox.env,
      REDIS_URL: `redis://:${WRONG}@127.0.0.1:${port}`,
      PROFILE_SYNC_PREFIX: 'pst-redis-auth',
      OPS_PORT: '0',
      LOG_LEVEL: 'info',
    };
  });
  afterAll(async () => {
    await sandbox?.close();
    if (redis) await stopRedis(redis);
  });

  const commands: string[][] = [
    ['backfill'],
    ['daemon'],
    ['runs'],
    ['report', 'latest'],
    ['history', 'u1'],
    ['forget', 'u1'],
    ['retry-failed'],
    ['sync-user', 'u1'],
    ['links', 'count', 'prelude'],
  ];

  it('every command that opens Redis exits 2 with the message, the password nowhere', async () => {
    // Before the fix `backfill` and `daemon` never exited: the CLI's timeout (60 s) ends them.
    const results = [];
    for (let i = 0; i < commands.length; i += 3) {
      results.push(...(await Promise.all(commands.slice(i, i + 3).map((args) => runCli(args, env, 60_000)))));
    }
    for (const [i, r] of results.entries()) {
      const out = `${r.stdout}\n${r.stderr}`;
      expect({ command: commands[i]!.join(' '), code: r.code }).toEqual({
        command: commands[i]!.join(' '),
        code: 2,
      });
      expect(r.stderr).toContain('Redis refused the credentials');
      expect(out).not.toContain(WRONG);
      expect(out).not.toContain(GOOD);
      // No stack trace and no ioredis command dump.
      expect(out).not.toMatch(/ReplyError|command: \{|at Decoder/);
    }
  }, 240_000);

  it('no password at all (NOAUTH) is the same; the right password works', async () => {
    const none = await runCli(['runs'], { ...env, REDIS_URL: `redis://127.0.0.1:${port}` }, 60_000);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('Redis refused the credentials');
    const ok = await runCli(['runs'], { ...env, REDIS_URL: `redis://:${GOOD}@127.0.0.1:${port}` }, 60_000);
    expect(ok.stderr).not.toContain(GOOD);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('no runs recorded');
  }, 120_000);

  it('a running daemon whose Redis starts refusing its password: logged without it, SIGTERM exits 0', async () => {
    const NEW = 'rotated-pass-5d2b';
    const daemon = spawnCli(['daemon', '--no-schedule'], {
      ...(env as Record<string, string>),
      REDIS_URL: `redis://:${GOOD}@127.0.0.1:${port}`,
    });
    const admin = new Redis(`redis://:${GOOD}@127.0.0.1:${port}`, { maxRetriesPerRequest: null });
    admin.on('error', () => undefined);
    try {
      await daemon.waitForLine(/"msg":"daemon started"/, 60_000);
      // The password is rotated under the daemon and its connections dropped: every reconnect fails.
      await admin.config('SET', 'requirepass', NEW);
      await admin.call('CLIENT', 'KILL', 'TYPE', 'normal');
      await daemon.waitForLine(/"msg":"Redis refused the credentials"/, 60_000);
      daemon.child.kill('SIGTERM');
      const exit = await daemon.exited;
      const out = daemon.lines.join('\n');
      expect(exit.code).toBe(0);
      expect(out).not.toContain(GOOD);
      expect(out).not.toContain(NEW);
      expect(out).not.toMatch(/ReplyError|command: \{|at Decoder/);
    } finally {
      daemon.kill();
      const fix = new Redis(`redis://:${NEW}@127.0.0.1:${port}`, { maxRetriesPerRequest: 1 });
      fix.on('error', () => undefined);
      await fix.config('SET', 'requirepass', GOOD).catch(() => undefined);
      fix.disconnect();
      admin.disconnect();
    }
  }, 180_000);
});
