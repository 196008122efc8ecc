import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisLayout } from '../../../src/store/redis-layout.js';
import type { RunOptions } from '../../../src/store/run-record.js';
import { RunStore } from '../../../src/store/run-store.js';
import { StateStore } from '../../../src/store/state-store.js';
import { cleanPrefix, redisClient, testPrefix } from '../../helpers/redis.js';

const OPTS: RunOptions = { targets: ['zephr'], dryRun: false, full: false, showPii: false, plan: false };

// Issue 11.2: a job's settle and the run's finish check are one script call (`record({ finish })`),
// and the gate reads the replay check in the same round trip (`jobGate(run, target, member)`).
describe('RunStore: settle and finish in one call', () => {
  const prefix = testPrefix('record-finish');
  const layout = new RedisLayout(prefix);
  let redis: Redis;
  let runs: RunStore;

  beforeAll(() => {
    redis = redisClient();
    runs = new RunStore(redis, layout);
  });
  afterAll(async () => {
    await cleanPrefix(redis, prefix);
    await redis.quit();
  });

  it('ends the run with the last settle only, exactly once; a replay of the last job still ends it', async () => {
    const id = await runs.create('backfill', OPTS);
    await runs.addPending(id, ['zephr/a', 'zephr/b']);
    await runs.updateScan(id, { status: 'done' });
    const item = {
      userId: 'a',
      target: 'zephr' as const,
      outcome: 'created' as const,
      diff: {},
      attempts: 1,
      requests: [],
      at: 1,
    };
    expect(
      await runs.record(id, {
        settle: 'zephr/a',
        counters: [['zephr', 'created', 1]],
        items: [item],
        finish: true,
      }),
    ).toBe(true);
    expect((await runs.get(id))!.status).toBe('running');
    expect((await runs.jobGate(id, 'zephr', 'zephr/a')).settled).toBe(true);
    expect((await runs.jobGate(id, 'zephr', 'zephr/b')).settled).toBe(false);
    expect((await runs.jobGate(id, 'zephr')).settled).toBe(false);
    // Extra reads ride along (the job's target state and Prelude link): values in order, null if absent.
    await redis.hset(layout.state('zephr'), 'a', 'state of a');
    const gate = await runs.jobGate(id, 'zephr', 'zephr/a', [
      [layout.state('zephr'), 'a'],
      [layout.links(), 'a'],
    ]);
    expect(gate).toMatchObject({ exists: true, settled: true, reads: ['state of a', null] });
    expect((await runs.jobGate('no-such-run', 'zephr', 'zephr/a')).exists).toBe(false);

    // The last job settled without the finish check (a crash between the two calls, as before).
    expect(await runs.record(id, { settle: 'zephr/b', counters: [['zephr', 'created', 1]] })).toBe(true);
    expect((await runs.get(id))!.status).toBe('running');
    // Its replay records nothing, and its finish check ends the run.
    expect(
      await runs.record(id, { settle: 'zephr/b', counters: [['zephr', 'created', 1]], finish: true }),
    ).toBe(false);
    const run = (await runs.get(id))!;
    expect(run.status).toBe('completed');
    expect(run.targets.zephr!.outcomes.created).toBe(2);
    expect(run.settled).toBe(2);
    expect(await runs.itemCount(id)).toBe(1);
    expect(await redis.pttl(layout.runPending(id))).toBeGreaterThan(0);
    expect(await redis.pttl(layout.runSettled(id))).toBeGreaterThan(0);
  });

  it("writes the job's target state (and clears its unlinked marker) in the same call", async () => {
    const id = await runs.create('backfill', OPTS);
    await runs.addPending(id, ['zephr/s']);
    const state = new StateStore(redis, layout);
    await state.markUnlinked('zephr', 's', { a: '0' });
    const item = {
      userId: 's',
      target: 'zephr' as const,
      outcome: 'created' as const,
      diff: {},
      attempts: 1,
      requests: [],
      at: 1,
    };
    const write = await state.writeOf('zephr', 's', { a: '1' }, 42);
    expect(await runs.record(id, { settle: 'zephr/s', items: [item], finish: true, state: write })).toBe(
      true,
    );
    expect(await state.get('zephr', 's')).toMatchObject({ fields: { a: '1' }, writtenAt: 42 });
    expect(await state.getUnlinked('zephr', 's')).toBeNull();
    expect(await runs.itemCount(id)).toBe(1);
    expect((await runs.history('s')).map((h) => h.runId)).toEqual([id]);
  });

  it("re-adds the state value's key list in the same call (a Redis emptied under a process that cached it)", async () => {
    const id = await runs.create('backfill', OPTS);
    await runs.addPending(id, ['zephr/k1', 'zephr/k2']);
    const state = new StateStore(redis, layout);
    const item = (userId: string) => ({
      userId,
      target: 'zephr' as const,
      outcome: 'created' as const,
      diff: {},
      attempts: 1,
      requests: [],
      at: 1,
    });
    const fields = { first_name: 'Ann', plan: 'gold' };
    await runs.record(id, {
      settle: 'zephr/k1',
      items: [item('k1')],
      finish: true,
      state: await state.writeOf('zephr', 'k1', fields, 7),
    });
    // The key lists vanish (FLUSHALL, an operator); this process still has the list cached, so the
    // next write's encode stores nothing itself: only the settle's call can put it back.
    await redis.del(layout.stateKeys('zephr'));
    await runs.record(id, {
      settle: 'zephr/k2',
      items: [item('k2')],
      finish: true,
      state: await state.writeOf('zephr', 'k2', fields, 8),
    });
    const fresh = new StateStore(redis, layout); // no cache: decodes from Redis alone
    expect(await fresh.get('zephr', 'k2')).toMatchObject({ fields, writtenAt: 8 });
  });

  it('records items per target with the bound like psRecord (the item keys come after the pending set)', async () => {
    const id = await runs.create('backfill', OPTS);
    await runs.addPending(id, ['zephr/x']);
    const item = {
      userId: 'x',
      target: 'zephr' as const,
      outcome: 'updated' as const,
      diff: {},
      attempts: 1,
      requests: [],
      at: 1,
    };
    expect(await runs.record(id, { settle: 'zephr/x', items: [item], finish: true })).toBe(true);
    const [stored] = await runs.items(id);
    expect(stored!.outcome).toBe('updated');
    expect((await runs.history('x')).map((h) => h.runId)).toEqual([id]);
    // The scan has not ended: the run goes on.
    expect((await runs.get(id))!.status).toBe('running');
  });
});
