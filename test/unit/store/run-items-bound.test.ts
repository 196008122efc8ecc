import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisLayout } from '../../../src/store/redis-layout.js';
import type { RunItem, RunOptions } from '../../../src/store/run-record.js';
import { RunStore } from '../../../src/store/run-store.js';
import { cleanPrefix, redisClient, testPrefix } from '../../helpers/redis.js';

// Issue 11.3: a run keeps at most RUN_ITEMS_MAX items per target, failures and rejections first;
// counters stay exact and the items left out are counted per target and outcome.
const OPTS: RunOptions = {
  targets: ['sunshine', 'zephr'],
  dryRun: false,
  full: false,
  showPii: false,
  plan: false,
};

function item(userId: string, over: Partial<RunItem> = {}): RunItem {
  return { userId, target: 'sunshine', outcome: 'created', attempts: 1, requests: [], at: 1, ...over };
}

describe('RunStore: bounded items (issue 11.3)', () => {
  const prefix = testPrefix('items-bound');
  const layout = new RedisLayout(prefix);
  let redis: Redis;

  beforeAll(() => {
    redis = redisClient();
  });
  afterAll(async () => {
    await cleanPrefix(redis, prefix);
    await redis.quit();
  });

  it('keeps itemsMax per target; a later failure or rejection displaces the oldest kept change', async () => {
    const store = new RunStore(redis, layout, { itemsMax: 3 });
    const seen: RunItem[] = [];
    const off = store.onItems((_, items) => seen.push(...items));
    const id = await store.create('backfill', OPTS);
    // 5 changes in sunshine, then a failure and a rejection; 2 changes in zephr (under the cap).
    for (let i = 0; i < 5; i++)
      await store.record(id, {
        settle: `sunshine/u${i}`,
        counters: [['sunshine', 'created', 1]],
        items: [item(`u${i}`)],
      });
    await store.record(id, {
      settle: 'sunshine/u5',
      counters: [['sunshine', 'failed', 1]],
      items: [item('u5', { outcome: 'failed', lastError: { code: 'E_HTTP_400' } })],
    });
    await store.record(id, {
      counters: [['sunshine', 'rejected', 1]],
      items: [item('u6', { outcome: 'rejected', reason: 'bad id' })],
    });
    for (let i = 0; i < 2; i++)
      await store.record(id, {
        settle: `zephr/z${i}`,
        counters: [['zephr', 'updated', 1]],
        items: [item(`z${i}`, { target: 'zephr', outcome: 'updated' })],
      });
    // A replayed settle records nothing, and is not seen by listeners.
    expect(await store.record(id, { settle: 'sunshine/u0', items: [item('u0')] })).toBe(false);
    off();

    const run = await store.get(id);
    expect(run!.itemsMax).toBe(3);
    expect(run!.targets.sunshine!.outcomes).toMatchObject({ created: 5, failed: 1, rejected: 1 });
    expect(run!.targets.sunshine!.itemsKept).toBe(3);
    expect(run!.targets.sunshine!.itemsLeftOut).toEqual({ created: 4 });
    expect(run!.targets.zephr!.itemsKept).toBe(2);
    expect(run!.targets.zephr!.itemsLeftOut).toBeUndefined();

    const items = await store.items(id);
    expect(items).toHaveLength(5);
    const sun = items.filter((i) => i.target === 'sunshine');
    expect(sun.map((i) => i.outcome).sort()).toEqual(['created', 'failed', 'rejected']);
    // The newest change (u2) survives; the two oldest were displaced.
    expect(sun.find((i) => i.outcome === 'created')!.userId).toBe('u2');
    expect(seen).toHaveLength(9);

    // History: kept items only; a displaced user's dangling entry shows nothing.
    expect(await store.history('u5')).toHaveLength(1);
    expect(await store.history('u0')).toHaveLength(0);
    expect(await store.history('u4')).toHaveLength(0);
  });

  it('a cap of 0 keeps no item but counts them all', async () => {
    const store = new RunStore(redis, layout, { itemsMax: 0 });
    const id = await store.create('backfill', OPTS);
    await store.record(id, {
      counters: [['zephr', 'failed', 1]],
      items: [item('a', { target: 'zephr', outcome: 'failed' })],
    });
    expect(await store.itemCount(id)).toBe(0);
    const run = await store.get(id);
    expect(run!.targets.zephr!.outcomes.failed).toBe(1);
    expect(run!.targets.zephr!.itemsLeftOut).toEqual({ failed: 1 });
  });

  it('ending a run expires its displaceable lists, deleting it deletes them', async () => {
    const store = new RunStore(redis, layout, { itemsMax: 2 });
    const id = await store.create('backfill', OPTS);
    await store.record(id, { items: [item('a'), item('b', { target: 'zephr' })] });
    expect(await redis.exists(layout.runItemsDisplaceable(id, 'sunshine'))).toBe(1);
    expect(await redis.pttl(layout.runItemsDisplaceable(id, 'sunshine'))).toBe(-1);
    // Ending the run expires them (an hour, like the settled set): they only serve a running run.
    expect(await store.finish(id, 'completed')).toBe(true);
    expect(await redis.pttl(layout.runItemsDisplaceable(id, 'sunshine'))).toBeGreaterThan(0);
    await store.deleteRun(id);
    expect(await redis.exists(layout.runItemsDisplaceable(id, 'sunshine'))).toBe(0);
    expect(await redis.exists(layout.runItemsDisplaceable(id, 'zephr'))).toBe(0);
  });
});
