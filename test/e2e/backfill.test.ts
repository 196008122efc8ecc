import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Sandbox, startSandbox } from '../../src/sandbox/index.js';
import { RedisLayout } from '../../src/store/redis-layout.js';
import { RunStore } from '../../src/store/run-store.js';
import { CLI, runCli as cli } from '../helpers/cli.js';
import { cleanPrefix, REDIS_URL, redisClient, testPrefix } from '../helpers/redis.js';
import { until } from '../integration/engine/e2e-helpers.js';

interface Counts {
  created: number;
  updated: number;
  unchanged: number;
  unlinked: number;
  rejected: number;
  failed: number;
  requests: number;
  skipped?: number;
}

interface Summary {
  runId: string;
  status: string;
  exitCode: number;
  targets: Record<string, Counts>;
}

describe.skipIf(!existsSync(CLI))('profile-sync backfill (the command, against the sandbox)', () => {
  let sandbox: Sandbox;
  let redis: Redis;
  const prefix = testPrefix('e2e-backfill');
  let env: Record<string, string | undefined>;

  beforeAll(async () => {
    sandbox = await startSandbox({ port: 0, users: 150, rateLimit: null });
    redis = redisClient();
    env = {
      PATH: process.env.PATH,
      ...sandbox.env,
      REDIS_URL,
      PROFILE_SYNC_PREFIX: prefix,
      LOG_LEVEL: 'error',
      SUNSHINE_RATE_LIMIT: '100000',
      ZEPHR_RATE_LIMIT: '100000',
      PRELUDE_RATE_LIMIT: '100000',
    };
  });
  afterAll(async () => {
    await sandbox.close();
    await cleanPrefix(redis, prefix);
    await redis.quit();
  });

  it('exits 0 with the JSON summary on stdout, then a second run is all unchanged with no write', async () => {
    const first = await cli(['backfill', '--json'], env);
    expect(first.code).toBe(0);
    const s = JSON.parse(first.stdout) as Summary;
    expect(s.runId).toMatch(/^\d{8}T\d{6}Z-[0-9a-f]{4}$/);
    expect(s.targets.sunshine!.created).toBe(150);
    expect(s.targets.zephr!.created).toBe(150);
    expect(s.targets.prelude!.created + s.targets.prelude!.unlinked).toBe(150);
    expect(s.targets.prelude!.unlinked).toBeGreaterThan(0);
    expect(s.targets.prelude!.failed).toBe(0);

    for (const t of ['sunshine', 'zephr', 'prelude'] as const) sandbox.sims[t].resetCounters();
    const second = await cli(['backfill', '--json'], env);
    expect(second.code).toBe(0);
    const again = JSON.parse(second.stdout) as Summary;
    for (const t of ['sunshine', 'zephr', 'prelude'] as const) {
      expect(again.targets[t]!.created + again.targets[t]!.updated).toBe(0);
      expect(again.targets[t]!.requests).toBe(0);
      expect(sandbox.sims[t].counters().total).toBe(0);
    }
    // The human summary and the run list name the run.
    const runs = await cli(['runs'], env);
    expect(runs.code).toBe(0);
    expect(runs.stdout).toContain(again.runId);
    const report = await cli(['report', 'latest', '--json'], env);
    expect((JSON.parse(report.stdout) as Summary).runId).toBe(again.runId);
  }, 120_000);

  it('--dry-run sends no write and writes the masked plan', async () => {
    await fetch(`${sandbox.urls.source}/__sandbox/users/mutate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ share: 0.1, seed: 3, fields: ['email'] }),
    });
    for (const t of ['sunshine', 'zephr', 'prelude'] as const) sandbox.sims[t].resetCounters();
    const dir = mkdtempSync(join(tmpdir(), 'ps-plan-'));
    const file = join(dir, 'plan.jsonl');
    const dry = await cli(['backfill', '--dry-run', '--plan', file], env);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain('dry run: nothing was written');
    // Issue 11.1: the mode and the requests per write. An email change: Sunshine (merge) GET + PUT,
    // Zephr (owned, the default) one PUT.
    expect(dry.stdout).toMatch(/target\s+mode\s+requests\s+per write\s+limit\/min/);
    expect(dry.stdout).toMatch(/sunshine\s+merge\s+\d+\s+2\.00\s+100000/);
    expect(dry.stdout).toMatch(/zephr\s+owned\s+\d+\s+1\.00\s+100000/);
    for (const t of ['sunshine', 'zephr'] as const) expect(sandbox.sims[t].counters().total).toBe(0);
    // Prelude: only reads. The changed users it does not know are looked up again (batch_lookup is a
    // read, sent in a dry run too); no PATCH, no create.
    const preludeRoutes = Object.keys(sandbox.sims.prelude.counters().byRoute);
    expect(preludeRoutes.filter((r) => r !== 'POST /v2/session/apps/:appID/users/batch_lookup')).toEqual([]);
    const lines = readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { target: string; method: string; body?: unknown });
    expect(lines.length).toBeGreaterThanOrEqual(15 * 2);
    const text = JSON.stringify(lines);
    // Emails appear masked only.
    expect(text).not.toMatch(/"[^"*@]{2,}@[^"]+"/);
    expect(text).toMatch(/\*\*\*@/);
  }, 120_000);

  it('exits 1 when a user is rejected, 2 on a usage or config error', async () => {
    const rejected = await cli(['backfill', '--users', 'no-such-user', '--json'], env);
    expect(rejected.code).toBe(1);
    expect((JSON.parse(rejected.stdout) as Summary).targets.sunshine!.rejected).toBe(1);
    expect((await cli(['backfill', '--targets', 'bogus'], env)).code).toBe(2);
    expect((await cli(['backfill', '--limit', 'ten'], env)).code).toBe(2);
    const noSource = await cli(['backfill'], { ...env, SOURCE_URL: undefined });
    expect(noSource.code).toBe(2);
    expect(noSource.stderr).toContain('SOURCE_URL');
  }, 60_000);

  it('Ctrl-C aborts the run cleanly: waiting jobs dropped, summary printed, exit 1', async () => {
    const fresh = testPrefix('e2e-sigint');
    try {
      // 3 Zephr requests a minute: the backfill would take an hour.
      const child = spawn(process.execPath, [CLI, 'backfill', '--targets', 'zephr', '--json'], {
        env: { ...env, PROFILE_SYNC_PREFIX: fresh, ZEPHR_RATE_LIMIT: '3' } as NodeJS.ProcessEnv,
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (b: Buffer) => {
        stdout += b.toString();
      });
      const started = new Promise<string>((resolve) => {
        child.stderr.on('data', (b: Buffer) => {
          stderr += b.toString();
          const m = /run (\S+) started/.exec(stderr);
          if (m) resolve(m[1]!);
        });
      });
      const runId = await started;
      // Interrupt once the scan has enqueued every user (a condition, not a sleep: issue 8.17).
      const runs = new RunStore(redis, new RedisLayout(fresh));
      await until('the scan to enqueue all 150 users', async () => {
        const r = await runs.get(runId);
        return r?.scan.status === 'done' && r.enqueued === 150;
      });
      child.kill('SIGINT');
      const code = await new Promise<number>((resolve) => child.on('exit', (c) => resolve(c ?? -1)));
      expect(code, stderr).toBe(1);
      const s = JSON.parse(stdout) as Summary & { abortReason?: string };
      expect(s.status).toBe('aborted');
      expect(s.abortReason).toMatch(/SIGINT/);
      expect(s.targets.zephr!.skipped).toBeGreaterThan(100);
    } finally {
      await cleanPrefix(redis, fresh);
    }
  }, 60_000);

  it('--max-failure-rate aborts cleanly after the first 100 users when a mapping is bad', async () => {
    // Every Prelude write is refused as invalid (a permanent 400): a canary for a broken mapping.
    sandbox.sims.prelude.setFaults([{ kind: 'status', status: 400, rate: 1, match: { method: 'PATCH' } }]);
    const fresh = testPrefix('e2e-canary');
    try {
      const run = await cli(
        ['backfill', '--targets', 'prelude', '--max-failure-rate', '0.2', '--json', '--concurrency', '1'],
        { ...env, PROFILE_SYNC_PREFIX: fresh },
      );
      expect(run.code, run.stderr).toBe(1);
      const s = JSON.parse(run.stdout) as Summary & { abortReason?: string; scan: { complete: boolean } };
      expect(s.status).toBe('aborted');
      expect(s.abortReason).toMatch(/max failure rate exceeded in prelude/);
      const p = s.targets.prelude!;
      // Judged after the first 100 settled (the users Prelude does not know are settled `unlinked` by
      // the scan, with no PATCH), then the rest of the run was dropped, not sent.
      expect(p.unlinked).toBeGreaterThan(0);
      expect(p.failed + p.unlinked).toBeGreaterThanOrEqual(100);
      expect(p.failed).toBeGreaterThan(50);
      expect(p.skipped).toBeGreaterThan(0);
      if (p.failed + p.unlinked + (p.skipped ?? 0) !== 150) console.log(run.stdout);
      expect(p.failed + p.unlinked + (p.skipped ?? 0)).toBe(150);
      expect(s.scan.complete).toBe(false);
    } finally {
      sandbox.sims.prelude.setFaults([]);
      await cleanPrefix(redis, fresh);
    }
  }, 120_000);
});
