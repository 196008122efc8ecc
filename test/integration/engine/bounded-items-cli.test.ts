import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Sandbox, startSandbox } from '../../../src/sandbox/index.js';
import { CLI, runCli } from '../../helpers/cli.js';
import { cleanPrefix, REDIS_URL, redisClient, testPrefix } from '../../helpers/redis.js';
import { type Proxy as LoopbackProxy, startProxy } from './e2e-helpers.js';

// Issue 11.3, as an operator meets it: RUN_ITEMS_MAX=5 and 20 changed users per target. Counters stay
// exact, the run record keeps 5 items per target with Zephr's failures first, `report` names what was
// left out, and `backfill --items-file` gets every item.
describe.skipIf(!existsSync(CLI))('bounded run items and --items-file (issue 11.3)', () => {
  let sandbox: Sandbox;
  let proxy: LoopbackProxy;
  let redis: Redis;
  let dir: string;
  const prefixes: string[] = [];
  let base: Record<string, string | undefined>;
  const env = (label: string, extra: Record<string, string> = {}) => {
    const prefix = testPrefix(label);
    prefixes.push(prefix);
    return { ...base, PROFILE_SYNC_PREFIX: prefix, ...extra };
  };

  beforeAll(async () => {
    sandbox = await startSandbox({ port: 0, users: 20, rateLimit: null, preludeUnknownShare: 0 });
    // Zephr refuses the 10th, 11th and 12th write with a 400 (permanent): 3 failures that arrive
    // once several changes are recorded already.
    let puts = 0;
    proxy = await startProxy(sandbox.urls.zephr, (req) => {
      if (req.method !== 'PUT') return undefined;
      puts++;
      return puts >= 10 && puts <= 12 ? { status: 400, body: { message: 'invalid profile' } } : undefined;
    });
    redis = redisClient();
    dir = mkdtempSync(join(tmpdir(), 'items-file-'));
    base = {
      ...sandbox.env,
      ZEPHR_URL: proxy.url,
      REDIS_URL,
      LOG_LEVEL: 'warn',
      SUNSHINE_RATE_LIMIT: '100000',
      ZEPHR_RATE_LIMIT: '100000',
      PRELUDE_RATE_LIMIT: '100000',
    };
  });
  afterAll(async () => {
    await proxy.close();
    await sandbox.close();
    for (const p of prefixes) await cleanPrefix(redis, p);
    await redis.quit();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps 5 items per target (failures first), counts the rest, and writes all 60 to the items file', async () => {
    const file = join(dir, 'items.jsonl');
    const e = env('items-cli', { RUN_ITEMS_MAX: '5' });
    const r = await runCli(['backfill', '--json', '--concurrency', '4', '--items-file', file], e, 150_000);
    expect(r.stderr).not.toMatch(/holds \d+ of the run/);
    const s = JSON.parse(r.stdout) as {
      runId: string;
      itemsWritten: number;
      targets: Record<string, Record<string, unknown>>;
    };
    const changed = (t: string) => Number(s.targets[t]!.created ?? 0) + Number(s.targets[t]!.updated ?? 0);
    expect(changed('sunshine')).toBe(20);
    expect(changed('prelude')).toBe(20);
    expect(changed('zephr')).toBe(17);
    expect(s.targets.zephr!.failed).toBe(3);
    for (const t of ['sunshine', 'zephr', 'prelude']) {
      expect(s.targets[t]!.itemsKept).toBe(5);
      const left = s.targets[t]!.itemsLeftOut as Record<string, number>;
      expect(Object.values(left).reduce((a, n) => a + n, 0)).toBe(15);
      expect(left.failed).toBeUndefined();
    }

    // Every item in the file: 20 per target, each user once.
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    expect(s.itemsWritten).toBe(60);
    const items = lines.map((l) => JSON.parse(l) as { userId: string; target: string; outcome: string });
    for (const t of ['sunshine', 'zephr', 'prelude']) {
      const of = items.filter((i) => i.target === t);
      expect(new Set(of.map((i) => i.userId)).size).toBe(20);
    }
    expect(items.filter((i) => i.outcome === 'failed')).toHaveLength(3);

    // The run record: 5 per target, Zephr's 3 failures among them.
    const j = await runCli(['report', s.runId, '--json'], e);
    const rep = JSON.parse(j.stdout) as {
      itemCount: number;
      items: { target: string; outcome: string }[];
      targets: Record<string, Record<string, unknown>>;
    };
    expect(rep.itemCount).toBe(15);
    for (const t of ['sunshine', 'zephr', 'prelude'])
      expect(rep.items.filter((i) => i.target === t)).toHaveLength(5);
    expect(rep.items.filter((i) => i.target === 'zephr' && i.outcome === 'failed')).toHaveLength(3);
    expect(rep.targets.zephr!.itemsLeftOut).toEqual({
      [changed('zephr') === 17 ? 'created' : 'updated']: 15,
    });

    const text = await runCli(['report', s.runId], e);
    expect(text.stdout).toMatch(/items left out of the run record \(RUN_ITEMS_MAX=5 per target/);
    expect(text.stdout).toMatch(/zephr 15 \(created 15; 5 kept\)/);
  }, 240_000);

  it('a bad RUN_ITEMS_MAX exits 2 naming it; an unwritable --items-file exits 2 before the run', async () => {
    const bad = await runCli(['backfill'], env('items-bad', { RUN_ITEMS_MAX: '-3' }));
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/RUN_ITEMS_MAX/);
    const e = env('items-nodir');
    const nodir = await runCli(['backfill', '--items-file', join(dir, 'no', 'such', 'x.jsonl')], e);
    expect(nodir.code).toBe(2);
    expect(nodir.stderr).toMatch(/--items-file: cannot write/);
    expect(await redis.zcard(`{${e.PROFILE_SYNC_PREFIX}}:runs`)).toBe(0);
  }, 60_000);
});
