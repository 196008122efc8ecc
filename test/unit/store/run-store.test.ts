import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { userKey } from '../../../src/core/hashing.js';
import { RedisLayout } from '../../../src/store/redis-layout.js';
import { newRunId } from '../../../src/store/run-codec.js';
import type { RunItem, RunOptions } from '../../../src/store/run-record.js';
import { RunStore } from '../../../src/store/run-store.js';
import { cleanPrefix, redisClient, testPrefix } from '../../helpers/redis.js';

const OPTS: RunOptions = {
  targets: ['sunshine', 'zephr'],
  dryRun: false,
  full: false,
  showPii: false,
  plan: false,
};

function item(userId: string, over: Partial<RunItem> = {}): RunItem {
  return {
    userId,
    target: 'sunshine',
    outcome: 'updated',
    diff: {
      'identifiers.email': { from: 'jane@example.com', to: 'jd@example.com' },
      name: { to: 'Jane Doe' },
    },
    attempts: 1,
    requests: [
      {
        method: 'GET',
        path: '/api/v2/user_profiles?identifier=s:t:email:jane%40example.com',
        status: 200,
        durationMs: 3,
        requestId: 'r1',
        attempt: 1,
      },
    ],
    at: 1,
    ...over,
  };
}

describe('RunStore', () => {
  const prefix = testPrefix('runs');
  const layout = new RedisLayout(prefix);
  let redis: Redis;

  beforeAll(() => {
    redis = redisClient();
  });
  afterAll(async () => {
    await cleanPrefix(redis, prefix);
    await redis.quit();
  });

  it('makes run ids without ":" that sort by time', () => {
    const a = newRunId(Date.UTC(2026, 0, 2, 3, 4, 5));
    expect(a).toMatch(/^20260102T030405Z-[0-9a-f]{4}$/);
    expect(newRunId(Date.UTC(2026, 0, 2, 3, 4, 6)) > a).toBe(true);
  });

  it('records counts per target and outcome, and items masked by default', async () => {
    const runs = new RunStore(redis, layout);
    const id = await runs.create('backfill', OPTS);
    const run = await runs.get(id);
    expect(run).toMatchObject({
      id,
      kind: 'backfill',
      status: 'running',
      options: OPTS,
      enqueued: 0,
      settled: 0,
    });
    expect(run!.targets.sunshine!.outcomes.created).toBe(0);

    await runs.record(id, {
      counters: [
        ['sunshine', 'unchanged', 40],
        ['zephr', 'rejected', 1],
        ['sunshine', 'requests', 2],
      ],
    });
    expect(await runs.addPending(id, ['sunshine/a', 'sunshine/b'])).toBe(2);
    expect(await runs.addPending(id, ['sunshine/a'])).toBe(0);
    expect(
      await runs.record(id, {
        settle: 'sunshine/a',
        counters: [['sunshine', 'updated', 1]],
        items: [item('jane')],
      }),
    ).toBe(true);
    // A replayed job settles once: nothing is counted or recorded twice.
    expect(
      await runs.record(id, {
        settle: 'sunshine/a',
        counters: [['sunshine', 'updated', 1]],
        items: [item('jane')],
      }),
    ).toBe(false);

    const after = (await runs.get(id))!;
    expect(after.targets.sunshine!.outcomes).toMatchObject({ unchanged: 40, updated: 1 });
    expect(after.targets.sunshine!.requests).toBe(2);
    expect(after.targets.zephr!.outcomes.rejected).toBe(1);
    expect(after.enqueued).toBe(2);
    expect(after.settled).toBe(1);

    const [stored] = await runs.items(id);
    // Issue 12.7: the two addresses share first letter and domain, and still look different.
    expect(stored!.diff).toEqual({
      'identifiers.email': {
        from: expect.stringMatching(/^j\*\*\*@example\.com#[0-9a-f]{4}$/),
        to: expect.stringMatching(/^j\*\*\*@example\.com#[0-9a-f]{4}$/),
      },
      name: { to: expect.stringMatching(/^J\*\*\*#[0-9a-f]{4}$/) },
    });
    const email = stored!.diff!['identifiers.email']!;
    expect(email.from).not.toBe(email.to);
    const maskKey = await redis.get(layout.maskKey());
    expect(maskKey).toMatch(/^[0-9a-f]{64}$/);
    expect(stored!.requests[0]!.path).toBe('/api/v2/user_profiles?identifier=s:t:email:j***%40example.com');
    const raw = JSON.stringify(await redis.lrange(layout.runItems(id), 0, -1));
    expect(raw).not.toContain('jane@example.com');
    expect(raw).not.toContain('Jane Doe');
    expect(raw).not.toContain(maskKey!);
  });

  it("jobGates answers each user's jobGate: the run's part decoded once, each user's settled flag and reads", async () => {
    const runs = new RunStore(redis, layout);
    const id = await runs.create('backfill', { ...OPTS, showPii: true, maxFailureRate: 0.5 });
    await runs.record(id, { settle: 'zephr/b', counters: [['zephr', 'updated', 1]] });
    await redis.hset(layout.state('zephr'), 'a', 'A', 'c', 'C');
    const asks = ['a', 'b', 'c'].map((u) => ({
      member: `zephr/${u}`,
      reads: [[layout.state('zephr'), u] as const, [layout.links(), u] as const],
    }));
    const each = async () => Promise.all(asks.map((a) => runs.jobGate(id, 'zephr', a.member, a.reads)));
    expect(await runs.jobGates(id, 'zephr', asks)).toEqual(await each());
    await runs.stopTarget(id, 'zephr', 'stopped for the test');
    await runs.requestAbort(id, 'aborted for the test');
    const gates = await runs.jobGates(id, 'zephr', asks);
    expect(gates).toEqual(await each());
    expect(gates.map((g) => [g.settled, g.reads, g.pii, g.maxFailureRate, g.abort, g.stopped])).toEqual([
      [false, ['A', null], true, 0.5, 'aborted for the test', 'stopped for the test'],
      [true, [null, null], true, 0.5, 'aborted for the test', 'stopped for the test'],
      [false, ['C', null], true, 0.5, 'aborted for the test', 'stopped for the test'],
    ]);
  });

  it('stores PII only when the run asked for it', async () => {
    const runs = new RunStore(redis, layout);
    const id = await runs.create('single-user', { ...OPTS, showPii: true });
    expect((await runs.jobGate(id, 'sunshine')).pii).toBe(true);
    await runs.record(id, { items: [item('jane')], pii: true });
    expect((await runs.items(id))[0]!.diff!.name).toEqual({ to: 'Jane Doe' });
  });

  it("indexes each user's history across runs and targets", async () => {
    const runs = new RunStore(redis, layout);
    const r1 = await runs.create('backfill', OPTS, Date.now() - 1000);
    const r2 = await runs.create('scheduled', OPTS);
    await runs.record(r1, { items: [item('u:7', { outcome: 'created' }), item('other')] });
    await runs.record(r2, { items: [item('u:7', { target: 'zephr', outcome: 'updated' })] });
    const h = await runs.history('u:7');
    expect(h.map((e) => [e.runId, e.kind, e.item.target, e.item.outcome])).toEqual([
      [r1, 'backfill', 'sunshine', 'created'],
      [r2, 'scheduled', 'zephr', 'updated'],
    ]);
    // A deleted run disappears from the history too.
    await runs.deleteRun(r1);
    expect((await runs.history('u:7')).map((e) => e.runId)).toEqual([r2]);
  });

  it('issue 11.4: the history index lives with its run (small bucket hashes), the old per-user zset is still read', async () => {
    const runs = new RunStore(redis, layout, { historyPerUser: 3 });
    const r1 = await runs.create('backfill', OPTS, Date.now() - 2000);
    const r2 = await runs.create('scheduled', OPTS, Date.now() - 1000);
    await runs.record(r1, { items: [item('hist:1'), item('hist:1', { target: 'zephr' })] });
    await runs.record(r2, { items: [item('hist:1', { outcome: 'updated' })] });
    const uk = userKey('hist:1');
    expect(await redis.hget(layout.runHistory(r1, uk), uk)).toBe('0,1');
    expect(await redis.object('ENCODING', layout.runHistory(r1, uk))).toBe('listpack');
    expect(await redis.exists(layout.history(uk))).toBe(0);
    // An entry a v1 process wrote (per-user zset, `<runId>/<index>`), in a third run.
    const r3 = await runs.create('scheduled', OPTS);
    await redis.rpush(
      layout.runItems(r3),
      JSON.stringify(item('hist:1', { outcome: 'updated', target: 'prelude' })),
    );
    await redis.zadd(layout.history(uk), Date.now(), `${r3}/0`, Date.now(), 'gone-run/4');
    const h = await runs.history('hist:1');
    // Oldest first, at most historyPerUser (3) of the 4: the newest kept.
    expect(h.map((e) => [e.runId, e.index, e.item.target])).toEqual([
      [r1, 1, 'zephr'],
      [r2, 0, 'sunshine'],
      [r3, 0, 'prelude'],
    ]);
    expect(await redis.zrange(layout.history(uk), '0', '-1')).toEqual([`${r3}/0`]); // the dangling ref dropped
    await runs.deleteRun(r1);
    expect(await redis.exists(layout.runHistory(r1, uk))).toBe(0);
  });

  it('applies retention by count and by age, and finishing a run expires its job bookkeeping', async () => {
    const p = testPrefix('retention');
    const l = new RedisLayout(p);
    const runs = new RunStore(redis, l, { keep: 3, maxAgeMs: 3600_000 });
    try {
      const now = Date.now();
      const ancient = await runs.create('backfill', OPTS, now - 2 * 3600_000);
      const ids: string[] = [];
      for (let i = 0; i < 4; i++) ids.push(await runs.create('scheduled', OPTS, now - 1000 + i));
      // The ancient one went by age, the oldest of the four by count.
      const left = (await runs.list(10)).map((r) => r.id);
      expect(left).toEqual([ids[3], ids[2], ids[1]]);
      expect(await runs.get(ancient)).toBeNull();
      expect(await redis.exists(l.run(ids[0]!))).toBe(0);

      await runs.addPending(ids[3]!, ['zephr/x']);
      await runs.record(ids[3]!, { settle: 'zephr/x' });
      await runs.finish(ids[3]!, 'completed');
      for (const k of [l.runPending(ids[3]!), l.runSettled(ids[3]!)]) {
        const ttl = await redis.pttl(k);
        expect(ttl).toBeGreaterThan(0);
        expect(ttl).toBeLessThanOrEqual(3_600_000);
      }
      // A late settle of the same job still counts once.
      expect(await runs.record(ids[3]!, { settle: 'zephr/x' })).toBe(false);
      expect((await runs.get(ids[3]!))!.status).toBe('completed');
      // finish is idempotent: a second finisher does not overwrite the status.
      await runs.finish(ids[3]!, 'aborted');
      expect((await runs.get(ids[3]!))!.status).toBe('completed');
    } finally {
      await cleanPrefix(redis, p);
    }
  });
});
