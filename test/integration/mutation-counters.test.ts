import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dropUnlinkedOfGone, seenKey } from '../../src/store/deletions.js';
import { createLinkStore, type LinkStore } from '../../src/store/links.js';
import { counterIndex, MUTATION_BUCKETS, mutationBucket } from '../../src/store/mutations.js';
import { RedisLayout } from '../../src/store/redis-layout.js';
import type { RunOptions } from '../../src/store/run-record.js';
import { RunStore } from '../../src/store/run-store.js';
import { StateStore } from '../../src/store/state-store.js';
import { cleanPrefix, redisClient, testPrefix } from '../helpers/redis.js';

/**
 * Issue 11: every change of what the scan decides on (a state, an unlinked marker, a Prelude link)
 * bumps its user's mutation counter (src/store/mutations.ts), or the scan's block conclusions could
 * outlive it (jobs/scan-blocks.ts). The settle call's bump and `forget`'s are covered end to end in
 * test/integration/engine/scan-blocks.test.ts.
 */
describe('mutation counters: every writer of states, markers and links bumps its user', () => {
  const prefix = testPrefix('mutations');
  const OPTS: RunOptions = { targets: ['zephr'], dryRun: false, full: false, showPii: false, plan: false };
  const layout = new RedisLayout(prefix);
  let redis: Redis;
  let state: StateStore;
  let links: LinkStore;

  const counter = async (id: string) =>
    (
      (await redis.call('BITFIELD', layout.mutations(), 'GET', 'u16', `#${counterIndex(id)}`)) as number[]
    )[0]!;
  async function bumped(id: string, change: () => Promise<unknown>): Promise<number> {
    const before = await counter(id);
    await change();
    return (await counter(id)) - before;
  }

  beforeAll(() => {
    redis = redisClient();
    state = new StateStore(redis, layout);
    links = createLinkStore(redis, prefix);
  });
  afterAll(async () => {
    await cleanPrefix(redis, prefix);
    await redis.quit();
  });

  it('buckets: 16 bits of FNV-1a, after the epoch', () => {
    expect(mutationBucket('user-1')).toBeLessThan(MUTATION_BUCKETS);
    expect(counterIndex('user-1')).toBe(mutationBucket('user-1') + 2);
    expect(mutationBucket('user-1')).not.toBe(mutationBucket('user-2'));
  });

  it('state: a write, a removal and an unlinked marker', async () => {
    expect(await bumped('s-1', () => state.saveWritten('zephr', 's-1', { first_name: 'Ann' }))).toBe(1);
    expect(await bumped('s-1', () => state.markUnlinked('prelude', 's-1', { first_name: 'Ann' }))).toBe(1);
    expect(await bumped('s-1', () => state.remove('zephr', 's-1'))).toBe(1);
    expect(await bumped('s-2', async () => undefined)).toBe(0);
  });

  it("state: a scan chunk's unlinked markers in one call, each user's counter bumped", async () => {
    const users = [
      ['m-1', { first_name: 'Ann' }],
      ['m-2', { first_name: 'Bob' }],
    ] as const;
    const mark = () => state.markUnlinkedMany('prelude', users, 1_000);
    expect(await bumped('m-1', mark)).toBe(1);
    expect(await bumped('m-2', mark)).toBe(1);
    const markers = await state.getUnlinkedMany('prelude', ['m-1', 'm-2', 'm-3']);
    expect(markers.map((m) => m?.at)).toEqual([1_000, 1_000, undefined]);
    expect(markers[0]!.hash).not.toBe(markers[1]!.hash);
  });

  it("a sync job's settle writing its state: one job's call and a batch's grouped call", async () => {
    const runs = new RunStore(redis, layout);
    const id = await runs.create('backfill', OPTS);
    await runs.addPending(id, ['zephr/j-1', 'zephr/j-2', 'zephr/j-3']);
    const single = await state.writeOf('zephr', 'j-1', { first_name: 'Jo' });
    expect(
      await bumped('j-1', () => runs.record(id, { settle: 'zephr/j-1', finish: true, state: single })),
    ).toBe(1);
    const two = await state.writeOf('zephr', 'j-2', { first_name: 'Jay' });
    const three = await state.writeOf('zephr', 'j-3', { first_name: 'Jen' });
    const before = [await counter('j-2'), await counter('j-3')];
    await runs.recordMany(
      id,
      [
        { settle: 'zephr/j-2', counters: [], items: [], state: two },
        { settle: 'zephr/j-3', counters: [], items: [], state: three },
      ],
      { pii: false },
    );
    expect([(await counter('j-2')) - before[0]!, (await counter('j-3')) - before[1]!]).toEqual([1, 1]);
    expect(await redis.hget(layout.state('zephr'), 'j-3')).toBe(three.value);
  });

  it('links: found, imported, dropped, removed (a link already there is no change)', async () => {
    const found = { sourceId: 'l-1', preludeUserId: 'usr_01', how: 'email' as const };
    expect(await bumped('l-1', () => links.addFound([found]))).toBe(1);
    expect(await bumped('l-1', () => links.addFound([found]))).toBe(0);
    expect(await bumped('l-1', () => links.drop('l-1', 'usr_01'))).toBe(1);
    expect(await bumped('l-2', () => links.import([{ sourceId: 'l-2', preludeUserId: 'usr_02' }]))).toBe(1);
    expect(await bumped('l-2', () => links.remove(['l-2']))).toBe(1);
  });

  it('a replacing import drops every block conclusion', async () => {
    await redis.hset(layout.scanBlocks(), 'k', 'v');
    await links.import([{ sourceId: 'l-3', preludeUserId: 'usr_03' }], { replace: true });
    expect(await redis.exists(layout.scanBlocks())).toBe(0);
  });

  it('deletion detection: the markers of users who left', async () => {
    await state.markUnlinked('prelude', 'gone-1', { first_name: 'Gus' });
    await redis.sadd(seenKey(layout, 'run-1'), 'someone-else');
    expect(await bumped('gone-1', () => dropUnlinkedOfGone(redis, layout, 'run-1', 'prelude'))).toBe(1);
  });

  it('deletion detection: only the markers of users the scan did not see go, over several batches', async () => {
    const ids = Array.from({ length: 9 }, (_, i) => `u-${i}`);
    for (const id of ids) await state.markUnlinked('prelude', id, { first_name: id });
    const seen = ids.filter((_, i) => i % 3 !== 0);
    await redis.sadd(seenKey(layout, 'run-2'), ...seen);
    expect(await dropUnlinkedOfGone(redis, layout, 'run-2', 'prelude', 2)).toEqual({
      dropped: 3,
      compared: true,
    });
    expect((await redis.hkeys(layout.unlinked('prelude'))).sort()).toEqual(seen.sort());
  });
});
