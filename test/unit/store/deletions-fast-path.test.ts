import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { userKey } from '../../../src/core/hashing.js';
import type { TargetId } from '../../../src/core/targets.js';
import type { ErasureDeps } from '../../../src/pipeline/erasure.js';
import { sweep, userMatcher } from '../../../src/pipeline/erasure-sweep.js';
import { findGone, goneBatches, recordSeen, startSeenCounts } from '../../../src/store/deletions.js';
import { RedisLayout } from '../../../src/store/redis-layout.js';
import { StateStore } from '../../../src/store/state-store.js';
import { cleanPrefix, redisClient, testPrefix } from '../../helpers/redis.js';

/**
 * Issue 11: deletion detection's fast path (src/store/deletions.ts). The scan counts the seen users
 * that had a state; when a target holds exactly that many states and none was removed since the scan
 * started, nobody left and the state hash is not compared. Sizes above the Lua scripts' slices of
 * 4,000 ids and the scan's chunks of 5,000, so the slicing is exercised too.
 */
const N = 12_000;
const BATCH = 5000;
const T: TargetId = 'sunshine';
const ids = Array.from({ length: N }, (_, i) => `u-${String(i).padStart(5, '0')}`);

describe('deletion detection fast path (issue 11)', () => {
  const prefix = testPrefix('gone-fast');
  const layout = new RedisLayout(prefix);
  let redis: Redis;
  let store: StateStore;
  let run = 0;

  beforeAll(async () => {
    redis = redisClient();
    store = new StateStore(redis, layout);
    const encoded = await Promise.all(ids.map((id) => store.encode(T, id, { name: `N ${id}` }, 1000)));
    for (let i = 0; i < N; i += 1000) {
      const fields: string[] = [];
      for (let j = i; j < Math.min(N, i + 1000); j++) fields.push(ids[j]!, encoded[j]!);
      await redis.hset(layout.state(T), ...fields);
    }
  });
  afterAll(async () => {
    await cleanPrefix(redis, prefix);
    await redis.quit();
  });

  /** A scan as jobs/scan.ts records it: counts started, then batches of ids with the ones that had a state. */
  async function scan(read: string[], opts: { twice?: boolean } = {}): Promise<string> {
    const runId = `run-${++run}`;
    await startSeenCounts(redis, layout, runId, [T]);
    for (let i = 0; i < read.length; i += BATCH) {
      const batch = read.slice(i, i + BATCH);
      const raw = await redis.hmget(layout.state(T), ...batch);
      const stated = new Map([[T, new Set(batch.filter((_, j) => raw[j] !== null))]]);
      await recordSeen(redis, layout, runId, batch, stated);
      if (opts.twice) await recordSeen(redis, layout, runId, batch, stated); // a restarted pass
    }
    return runId;
  }

  async function gone(runId: string) {
    const r = await findGone(redis, layout, runId, T, 2000, 60_000);
    const list: string[] = [];
    for await (const b of goneBatches(redis, layout, runId, T)) list.push(...b);
    return { ...r, ids: list.sort() };
  }

  it('every known user read again: nobody gone, without comparing the states', async () => {
    const r = await gone(await scan(ids));
    expect(r).toEqual({ known: N, gone: 0, compared: false, ids: [] });
  });

  it('users who left: compared, exactly those found, a user read but unknown changes nothing', async () => {
    const left = ids.filter((_, i) => i % 1000 === 7);
    const read = [...ids.filter((id) => !left.includes(id)), 'new-1', 'new-2'];
    const r = await gone(await scan(read));
    expect(r).toEqual({ known: N, gone: left.length, compared: true, ids: left });
  });

  it('ids read twice (a restarted pass) are counted once: the users who left are still found', async () => {
    // Counted twice, the 6,000 users read would match the 12,000 states and hide the 6,000 who left.
    const read = ids.slice(0, N / 2);
    const r = await gone(await scan(read, { twice: true }));
    expect(r).toEqual({ known: N, gone: N / 2, compared: true, ids: ids.slice(N / 2) });
  });

  it('an id repeated in a batch counts once, by its flagged occurrence, whatever comes before it', async () => {
    const runId = `run-${++run}`;
    await startSeenCounts(redis, layout, runId, [T]);
    // As the scan flags them: an unknown user first (no state), then a known one, then that one again
    // (the repeat is never flagged).
    await recordSeen(redis, layout, runId, ['new-9', ids[0]!, ids[0]!], new Map([[T, '010']]));
    expect(await redis.hget(layout.runSeenCounts(runId), `seen:${T}`)).toBe('1');
  });

  it('a state removed during the scan: the fast path is refused and the user who left is found', async () => {
    const runId = `run-${++run}`;
    await startSeenCounts(redis, layout, runId, [T]);
    // The scan reads every user but the last one (who left the source) ...
    const read = ids.slice(0, -1);
    for (let i = 0; i < read.length; i += BATCH) {
      const batch = read.slice(i, i + BATCH);
      await recordSeen(redis, layout, runId, batch, new Map([[T, new Set(batch)]]));
    }
    // ... and meanwhile a user it read is removed (a removal job, `forget`): as many states are left as
    // were counted, one of them the unread user's.
    await store.remove(T, ids[0]!);
    expect(await redis.hlen(layout.state(T))).toBe(read.length);
    const r = await gone(runId);
    expect(r).toEqual({ known: N - 1, gone: 1, compared: true, ids: [ids[N - 1]] });
  });

  it('a user forgotten during the scan (erasure sweep): the fast path is refused too', async () => {
    // After the test before: ids[0] has no state. Read all but the last user, then forget one read.
    const present = ids.slice(1);
    const runId = await scan(present.slice(0, -1));
    const forgotten = present[0]!;
    const deps = { redis, layout } as unknown as ErasureDeps;
    const opts = { dryRun: false, keepTargets: [], skipTargets: [], userId: forgotten };
    await sweep(deps, userMatcher(forgotten, userKey(forgotten), []), opts);
    expect(await redis.hexists(layout.state(T), forgotten)).toBe(0);
    expect(await redis.hlen(layout.state(T))).toBe(present.length - 1);
    const r = await gone(runId);
    expect(r).toEqual({ known: present.length - 1, gone: 1, compared: true, ids: [ids[N - 1]] });
  });

  it('a scan that counted nothing (started before this version, or counts expired) compares', async () => {
    const runId = `run-${++run}`;
    for (let i = 0; i < ids.length; i += BATCH)
      await recordSeen(redis, layout, runId, ids.slice(i, i + BATCH));
    const r = await findGone(redis, layout, runId, T, 2000, 60_000);
    expect(r.compared).toBe(true);
  });
});
