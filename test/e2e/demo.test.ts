import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/paths.js';
import { startSandbox } from '../../src/sandbox/index.js';
import { RedisLayout } from '../../src/store/redis-layout.js';
import { RunStore } from '../../src/store/run-store.js';
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

interface SourceRow {
  id: string;
  firstName?: string | null;
  lastName?: string | null;
  email?: string | null;
}

/**
 * What the demo must report, computed independently of the demo's run: the sandbox's data are
 * deterministic by seed (users by seed 1, the users Prelude does not know by seed 1 and a share of 0.1,
 * the demo's change by `POST /__sandbox/users/mutate {share: 0.05, seed: 2}`), so a sandbox of this
 * test's own, started like the demo's, holds the same users; its /__sandbox/ state says which users
 * Prelude knows and which fields each change touched.
 */
async function expectedDemo(users: number): Promise<{
  changed: string[];
  preludeKnown: number;
  changedKnown: number;
  changedUnknown: number;
}> {
  const sandbox = await startSandbox({ port: 0, users, rateLimit: null });
  try {
    const get = async <T>(base: string, path: string): Promise<T> => {
      const res = await fetch(`${base}/__sandbox/${path}`);
      if (!res.ok) throw new Error(`${path}: ${res.status}`);
      return (await res.json()) as T;
    };
    const before = await get<SourceRow[]>(sandbox.urls.source, 'users');
    const known = new Set<string>();
    for (const u of before) {
      const r = await get<{ known: boolean }>(sandbox.urls.prelude, `users/${encodeURIComponent(u.id)}`);
      if (r.known) known.add(u.id);
    }
    const res = await fetch(`${sandbox.urls.source}/__sandbox/users/mutate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ share: 0.05, seed: 2 }),
    });
    const { changed } = (await res.json()) as { changed: string[] };
    const after = new Map((await get<SourceRow[]>(sandbox.urls.source, 'users')).map((u) => [u.id, u]));
    // Prelude's mapping is firstName/lastName/email as they are: a change of any of them is a write.
    const touched = changed.filter((id) => {
      const a = before.find((u) => u.id === id)!;
      const b = after.get(id)!;
      return a.firstName !== b.firstName || a.lastName !== b.lastName || a.email !== b.email;
    });
    expect(touched).toEqual(changed);
    return {
      changed,
      preludeKnown: known.size,
      changedKnown: changed.filter((id) => known.has(id)).length,
      changedUnknown: changed.filter((id) => !known.has(id)).length,
    };
  } finally {
    await sandbox.close();
  }
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
    const want = await expectedDemo(1000);
    // Sanity of the derivation itself: 5% of 1,000 changed; Prelude does not know about 10%.
    expect(want.changed).toHaveLength(50);
    expect(want.preludeKnown).toBeGreaterThan(800);
    expect(want.preludeKnown).toBeLessThan(1000);
    expect(want.changedKnown).toBeGreaterThan(0);
    const r = await run('npm', ['run', '--silent', 'demo'], {
      ...baseEnv(),
      REDIS_URL,
      PROFILE_SYNC_DEMO_PREFIX: prefix,
    });
    expect(r.code, r.stderr).toBe(0);
    const [first, second, ...rest] = summaries(r.stdout);
    expect(rest).toEqual([]);
    for (const t of ['sunshine', 'zephr', 'prelude']) {
      expect(first![t]!.failed).toBe(0);
      expect(first![t]!.rejected).toBe(0);
      expect(second![t]!.created).toBe(0);
      expect(second![t]!.failed).toBe(0);
      expect(second![t]!.rejected).toBe(0);
    }
    // First run: every user created in Sunshine and Zephr; in Prelude exactly the users it knows by
    // external_id (the sandbox's default `usr` ids, as the real service: found with batch_lookup, 100
    // users per request), the others `unlinked` with no PATCH.
    expect(first!.sunshine!.created).toBe(1000);
    expect(first!.zephr!.created).toBe(1000);
    expect(first!.prelude!.created).toBe(want.preludeKnown);
    expect(first!.prelude!.unlinked).toBe(1000 - want.preludeKnown);
    expect(first!.prelude!.lookups).toBe(10);
    expect(first!.prelude!.requests).toBe(want.preludeKnown + 10);
    const changed = Number(/== 2\. (\d+) users \(5%\) changed/.exec(r.stdout)?.[1]);
    expect(changed).toBe(want.changed.length);
    // Only the changed users are written: every one of them in Sunshine and Zephr, exactly those
    // Prelude knows in Prelude; everything else unchanged (no request).
    expect(second!.sunshine!.updated).toBe(changed);
    expect(second!.zephr!.updated).toBe(changed);
    expect(second!.prelude!.updated).toBe(want.changedKnown);
    expect(second!.sunshine!.unchanged).toBe(1000 - changed);
    expect(second!.zephr!.unchanged).toBe(1000 - changed);
    expect(second!.prelude!.unchanged! + second!.prelude!.unlinked!).toBe(1000 - want.changedKnown);
    // A changed user Prelude does not know is looked up again (its unlinked marker is for the old
    // payload): at most one lookup per changed unknown user, batched per chunk; one PATCH per
    // changed known user, nothing for the rest.
    expect(second!.prelude!.lookups).toBeGreaterThan(0);
    expect(second!.prelude!.lookups).toBeLessThanOrEqual(want.changedUnknown);
    expect(second!.prelude!.requests).toBe(want.changedKnown + second!.prelude!.lookups!);
    // Issue 11.1: Zephr writes in owned mode by default, one PUT per write, no read; Sunshine in merge
    // mode (the default) reads before each create (GET + PUT) and patches a changed name.
    expect(first!.zephr!.requests).toBe(1000);
    expect(second!.zephr!.requests).toBe(changed);
    expect(first!.sunshine!.requests).toBe(2000);
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
