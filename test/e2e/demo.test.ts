import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/paths.js';
import { RunStore } from '../../src/pipeline/run-store.js';
import { RedisLayout } from '../../src/queue/redis-layout.js';
import { cleanPrefix, REDIS_URL, redisClient, testPrefix } from '../helpers/redis.js';
import { assertBuilt, CLI } from '../reliability/processes.js';

interface Done {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], env: Record<string, string>): Promise<Done> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: packageRoot(), env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The summary tables printed on stdout: per table, target -> column -> number. */
function summaries(stdout: string): Record<string, Record<string, number>>[] {
  const out: Record<string, Record<string, number>>[] = [];
  const lines = stdout.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (!/^target\s+created\s+updated/.test(lines[i]!)) continue;
    const cols = lines[i]!.trim().split(/\s+/);
    const table: Record<string, Record<string, number>> = {};
    for (let j = i + 1; j < lines.length && lines[j]!.trim() !== ''; j++) {
      const cells = lines[j]!.trim().split(/\s+/);
      table[cells[0]!] = Object.fromEntries(cols.slice(1).map((c, k) => [c, Number(cells[k + 1])]));
    }
    out.push(table);
  }
  return out;
}

async function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

const baseEnv = () => ({ PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' });

describe('npm run demo', () => {
  const prefix = testPrefix('demo');
  const redis = redisClient();

  beforeAll(() => assertBuilt());
  afterAll(async () => {
    await cleanPrefix(redis, prefix);
    await redis.quit();
  });

  it('backfills 1,000 users, changes 5%, and the second run writes only those', async () => {
    const r = await run('npm', ['run', '--silent', 'demo'], {
      ...baseEnv(),
      REDIS_URL,
      PROFILE_SYNC_DEMO_PREFIX: prefix,
    });
    expect(r.code, r.stderr).toBe(0);
    const [first, second, ...rest] = summaries(r.stdout);
    expect(rest).toEqual([]);
    for (const t of ['sunshine', 'zephr', 'prelude']) {
      expect(first![t]!.created! + first![t]!.unlinked!).toBe(1000);
      expect(first![t]!.failed).toBe(0);
      expect(second![t]!.created).toBe(0);
      expect(second![t]!.failed).toBe(0);
    }
    const changed = Number(/== 2\. (\d+) users \(5%\) changed/.exec(r.stdout)?.[1]);
    expect(changed).toBe(50);
    // Only the changed users are written: every one of them in Sunshine and Zephr, those Prelude
    // knows in Prelude; everything else unchanged (no request).
    expect(second!.sunshine!.updated).toBe(changed);
    expect(second!.zephr!.updated).toBe(changed);
    expect(second!.prelude!.updated).toBeLessThanOrEqual(changed);
    expect(second!.sunshine!.unchanged).toBe(1000 - changed);
    expect(second!.zephr!.unchanged).toBe(1000 - changed);
    // Where to look, and the runs are really there under the demo prefix.
    const ids = [...r.stdout.matchAll(/^run (\S+) \(backfill\): completed/gm)].map((m) => m[1]!);
    expect(ids).toHaveLength(2);
    expect(r.stdout).toContain(`profile-sync report ${ids[1]}`);
    const stored = await new RunStore(redis, new RedisLayout(prefix)).get(ids[1]!);
    expect(stored?.targets.sunshine?.outcomes.updated).toBe(changed);
    // Progress went to stderr, never the summary's stdout; no secret on either.
    expect(r.stdout).not.toMatch(/sandbox-(source|sunshine|zephr|prelude)-(secret|token|key|jwt)/);
    expect(r.stderr).not.toMatch(/sandbox-(source|sunshine|zephr|prelude)-(secret|token|key|jwt)/);
  }, 120_000);

  it('starts and stops a throwaway redis-server when nothing answers at REDIS_URL', async () => {
    const port = await closedPort();
    const r = await run(process.execPath, [CLI, 'demo', '--users', '40'], {
      ...baseEnv(),
      REDIS_URL: `redis://127.0.0.1:${port}`,
    });
    expect(r.code, r.stderr).toBe(0);
    const m = /a throwaway redis-server at redis:\/\/127\.0\.0\.1:(\d+)/.exec(r.stdout);
    expect(m).not.toBeNull();
    expect(r.stdout).toContain('gone now');
    expect(summaries(r.stdout)).toHaveLength(2);
    // It was stopped: nothing answers on its port any more.
    const probe = new Redis(`redis://127.0.0.1:${m![1]}`, {
      lazyConnect: true,
      retryStrategy: () => null,
      maxRetriesPerRequest: 0,
    });
    probe.on('error', () => undefined);
    await expect(probe.connect()).rejects.toThrow();
    probe.disconnect();
  }, 120_000);

  it('exits 2 with how to get a Redis when none answers and redis-server is not on the PATH', async () => {
    const port = await closedPort();
    const r = await run(process.execPath, [CLI, 'demo', '--users', '10'], {
      PATH: '/nonexistent',
      HOME: process.env.HOME ?? '/tmp',
      REDIS_URL: `redis://127.0.0.1:${port}`,
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('redis-server is not on the PATH');
    expect(r.stderr).toContain('REDIS_URL=');
    expect(r.stdout).toBe('');
  }, 60_000);
});
