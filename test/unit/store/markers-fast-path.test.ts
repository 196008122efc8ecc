import type { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  dropUnlinkedOfGone,
  MARKERS_SEEN,
  markersAllSeen,
  recordSeen,
  startSeenCounts,
} from '../../../src/store/deletions.js';
import { RedisLayout } from '../../../src/store/redis-layout.js';
import { StateStore } from '../../../src/store/state-store.js';
import { cleanPrefix, redisClient, testPrefix } from '../../helpers/redis.js';

/**
 * Issue 11 (the unchanged re-run): Prelude's unlinked markers of users who left are dropped after a
 * complete scan; when the scan counted, among the users it read, exactly as many with a marker as the
 * marker hash holds, and no marker was written or dropped since the scan started (the mutation
 * counters unchanged), every marker is a seen user's and none is compared (src/store/deletions.ts
 * `markersAllSeen`). Sizes above the scripts' slices of 4,000.
 */
const N = 9000;
const BATCH = 5000;
const ids = Array.from({ length: N }, (_, i) => `u-${String(i).padStart(5, '0')}`);

describe('unlinked markers of users who left: the fast path (issue 11)', () => {
  let redis: Redis;
  let layout: RedisLayout;
  let store: StateStore;
  let prefix: string;
  let run = 0;

  beforeAll(() => {
    redis = redisClient();
  });
  beforeEach(async () => {
    if (prefix) await cleanPrefix(redis, prefix);
    prefix = testPrefix('markers-fast');
    layout = new RedisLayout(prefix);
    store = new StateStore(redis, layout);
    // Every third user unlinked in Prelude (a marker, its counter bumped as every writer does).
    const marked = ids.filter((_, i) => i % 3 === 0);
    for (let i = 0; i < marked.length; i += 1000)
      await store.markUnlinkedMany(
        'prelude',
        marked.slice(i, i + 1000).map((id) => [id, { first_name: id }] as const),
      );
  });
  afterAll(async () => {
    await cleanPrefix(redis, prefix);
    await redis.quit();
  });

  const marked = new Set(ids.filter((_, i) => i % 3 === 0));
  /** A scan as jobs/scan.ts records it: counts started, then batches with their state and marker flags. */
  async function scan(read: string[], opts: { twice?: boolean; during?: () => Promise<void> } = {}) {
    const runId = `run-${++run}`;
    await startSeenCounts(redis, layout, runId, ['prelude']);
    for (let i = 0; i < read.length; i += BATCH) {
      const batch = read.slice(i, i + BATCH);
      const markers = batch.map((id) => (marked.has(id) ? '1' : '0')).join('');
      const stated = new Map([['prelude' as const, '0'.repeat(batch.length)]]);
      await recordSeen(redis, layout, runId, batch, stated, markers);
      if (opts.twice) await recordSeen(redis, layout, runId, batch, stated, markers); // a restarted pass
      if (i === 0) await opts.during?.();
    }
    return runId;
  }
  const markers = async () => (await redis.hkeys(layout.unlinked('prelude'))).sort();

  it('every marked user read again: nothing compared, nothing dropped', async () => {
    const before = await markers();
    const runId = await scan(ids);
    expect(await redis.hget(layout.runSeenCounts(runId), `seen:${MARKERS_SEEN}`)).toBe(String(N / 3));
    expect(await markersAllSeen(redis, layout, runId)).toBe(true);
    expect(await dropUnlinkedOfGone(redis, layout, runId, 'prelude')).toEqual({
      dropped: 0,
      compared: false,
    });
    expect(await markers()).toEqual(before);
  });

  it('a marked user who left: compared, exactly that marker dropped', async () => {
    const left = ids[3]!;
    const runId = await scan(ids.filter((id) => id !== left));
    expect(await markersAllSeen(redis, layout, runId)).toBe(false);
    expect(await dropUnlinkedOfGone(redis, layout, runId, 'prelude')).toEqual({ dropped: 1, compared: true });
    expect(await markers()).not.toContain(left);
    expect((await markers()).length).toBe(N / 3 - 1);
  });

  it('ids read twice (a restarted pass) count once: the marker of the user who left is still dropped', async () => {
    const left = ids[6]!;
    const runId = await scan(
      ids.filter((id) => id !== left),
      { twice: true },
    );
    expect(await dropUnlinkedOfGone(redis, layout, runId, 'prelude')).toEqual({ dropped: 1, compared: true });
  });

  it('a marker written and one dropped during the scan: the counts match, yet every marker is compared', async () => {
    // The scan reads every user and counts 3,000 marked ones. Meanwhile a user who is not in the
    // source gets a marker and a counted user's marker goes (a link found): still 3,000 markers, one of
    // them a stranger's. Only the mutation counters tell.
    const runId = await scan(ids, {
      during: async () => {
        await store.markUnlinked('prelude', 'stranger', { first_name: 'S' });
        await store.saveWritten('prelude', ids[0]!, { first_name: ids[0]! });
      },
    });
    expect(await redis.hlen(layout.unlinked('prelude'))).toBe(N / 3);
    expect(await markersAllSeen(redis, layout, runId)).toBe(false);
    expect(await dropUnlinkedOfGone(redis, layout, runId, 'prelude')).toEqual({ dropped: 1, compared: true });
    expect(await markers()).not.toContain('stranger');
  });

  it('no mutation counters when the scan started: every marker is compared', async () => {
    await redis.del(layout.mutations());
    const runId = await scan(ids);
    expect(await markersAllSeen(redis, layout, runId)).toBe(false);
    expect(await dropUnlinkedOfGone(redis, layout, runId, 'prelude')).toEqual({ dropped: 0, compared: true });
  });

  it('a scan that did not count markers (no flags): every marker is compared', async () => {
    const runId = `run-${++run}`;
    await startSeenCounts(redis, layout, runId, ['prelude']);
    for (let i = 0; i < N; i += BATCH) {
      const batch = ids.slice(i, i + BATCH);
      await recordSeen(
        redis,
        layout,
        runId,
        batch,
        new Map([['prelude' as const, '0'.repeat(batch.length)]]),
      );
    }
    expect(await dropUnlinkedOfGone(redis, layout, runId, 'prelude')).toEqual({ dropped: 0, compared: true });
  });
});
