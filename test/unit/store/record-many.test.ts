import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisLayout } from '../../../src/store/redis-layout.js';
import type { RunItem, RunOptions, RunStatus } from '../../../src/store/run-record.js';
import { RunStore } from '../../../src/store/run-store.js';
import { StateStore } from '../../../src/store/state-store.js';
import { cleanPrefix, redisClient, testPrefix } from '../../helpers/redis.js';

const OPTS: RunOptions = { targets: ['zephr'], dryRun: false, full: false, showPii: false, plan: false };

const item = (userId: string): RunItem => ({
  userId,
  target: 'zephr',
  outcome: 'created',
  diff: { first_name: { to: 'Ann' } },
  attempts: 1,
  requests: [],
  at: 1,
});

// Issue 11: a sync batch settles a few written users in one call (`recordMany`): each exactly as
// `record({ finish })` would, once per member, then one finish check.
describe('RunStore.recordMany: several settles in one call', () => {
  const prefix = testPrefix('record-many');
  const layout = new RedisLayout(prefix);
  let redis: Redis;
  let runs: RunStore;
  let state: StateStore;

  beforeAll(() => {
    redis = redisClient();
    runs = new RunStore(redis, layout);
    state = new StateStore(redis, layout);
  });
  afterAll(async () => {
    await cleanPrefix(redis, prefix);
    await redis.quit();
  });

  it('records counters, masked items, history and states once per member; a member settled before records nothing', async () => {
    const id = await runs.create('backfill', OPTS);
    await runs.addPending(id, ['zephr/a', 'zephr/b', 'zephr/c']);
    await state.markUnlinked('zephr', 'b', { a: '0' });
    // `a` settled already (a batch re-run after its call went through): its entry is a replay.
    expect(
      await runs.record(id, { settle: 'zephr/a', counters: [['zephr', 'created', 1]], items: [item('a')] }),
    ).toBe(true);
    const ended: RunStatus[] = [];
    const kept = await runs.recordMany(
      id,
      [
        { settle: 'zephr/a', counters: [['zephr', 'created', 1]], items: [item('a')] },
        {
          settle: 'zephr/b',
          counters: [
            ['zephr', 'created', 1],
            ['zephr', 'requests', 1],
          ],
          items: [item('b')],
          state: await state.writeOf('zephr', 'b', { a: '1' }, 42),
        },
        { settle: 'zephr/c', counters: [['zephr', 'unchanged', 1]], items: [] },
      ],
      { pii: false, onEnded: (s) => ended.push(s) },
    );
    expect(kept).toEqual([false, true, true]);
    const run = (await runs.get(id))!;
    expect(run.settled).toBe(3);
    expect(run.targets.zephr!.outcomes).toMatchObject({ created: 2, unchanged: 1 });
    expect(run.targets.zephr!.requests).toBe(1);
    const items = await runs.items(id);
    expect(items.map((i) => i.userId)).toEqual(['a', 'b']);
    expect(items[1]!.diff!.first_name!.to).toMatch(/^A\*\*\*#[0-9a-f]{4}$/); // masked as stored
    expect((await runs.history('b')).map((h) => h.runId)).toEqual([id]);
    expect(await state.get('zephr', 'b')).toMatchObject({ fields: { a: '1' }, writtenAt: 42 });
    expect(await state.getUnlinked('zephr', 'b')).toBeNull();
    // The scan has not ended: the run goes on.
    expect(run.status).toBe('running');
    expect(ended).toEqual([]);
  });

  it('ends the run in the call that settles its last users, once', async () => {
    const id = await runs.create('backfill', OPTS);
    await runs.addPending(id, ['zephr/x', 'zephr/y']);
    await runs.updateScan(id, { status: 'done' });
    const ended: RunStatus[] = [];
    const entries = ['x', 'y'].map((u) => ({
      settle: `zephr/${u}`,
      counters: [['zephr', 'updated', 1]] as [['zephr', 'updated', number]],
      items: [{ ...item(u), outcome: 'updated' as const }],
    }));
    expect(await runs.recordMany(id, entries, { pii: true, onEnded: (s) => ended.push(s) })).toEqual([
      true,
      true,
    ]);
    expect(ended).toEqual(['completed']);
    const run = (await runs.get(id))!;
    expect(run.status).toBe('completed');
    expect(run.targets.zephr!.outcomes.updated).toBe(2);
    expect((await runs.items(id))[0]!.diff!.first_name!.to).toBe('Ann'); // PII kept when the run asks
    // A replay of the same call records nothing and ends nothing.
    expect(await runs.recordMany(id, entries, { pii: true, onEnded: (s) => ended.push(s) })).toEqual([
      false,
      false,
    ]);
    expect(ended).toEqual(['completed']);
    expect((await runs.get(id))!.targets.zephr!.outcomes.updated).toBe(2);
  });
});
