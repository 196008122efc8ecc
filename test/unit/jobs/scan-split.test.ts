import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { splitFresh } from '../../../jobs/scan-chunk.js';
import type { TargetId } from '../../../src/core/targets.js';
import type { SourceRecord } from '../../../src/core/types.js';
import { RedisLayout } from '../../../src/store/redis-layout.js';
import { StateStore } from '../../../src/store/state-store.js';
import { cleanPrefix, redisClient, testPrefix } from '../../helpers/redis.js';

/**
 * Issue 11 (re-run): the scan's duplicate check rides on its chunk read (StateStore.readChunk with
 * `seen`: one Lua call answers the states and the seen set's members), and `splitFresh` turns that one
 * read into the fresh records, the read of their valid users and the flags recordSeen counts.
 */
const TARGETS: TargetId[] = ['sunshine', 'prelude'];

describe('the scan chunk read with its duplicate check (issue 11)', () => {
  const prefix = testPrefix('scan-split');
  const layout = new RedisLayout(prefix);
  let redis: Redis;
  let store: StateStore;

  beforeAll(() => {
    redis = redisClient();
    store = new StateStore(redis, layout);
  });
  afterAll(async () => {
    await cleanPrefix(redis, prefix);
    await redis.quit();
  });

  it('answers the seen set per id in the same call as the states, past the script slices of 1,000', async () => {
    const ids = Array.from({ length: 2500 }, (_, i) => `u-${i}`);
    const seen = layout.runSeen('r1');
    await redis.sadd(seen, ...ids.filter((_, i) => i % 7 === 0));
    await store.saveWritten('sunshine', 'u-1999', { name: 'Ann' }, 1000);
    const read = await store.readChunk(TARGETS, ids, { prelude: true, seen });
    expect(read.seen).toEqual(ids.map((_, i) => i % 7 === 0));
    expect(read.states[0]!.map((s, i) => (s ? i : -1)).filter((i) => i >= 0)).toEqual([1999]);
    expect(read.states[1]!.every((s) => s === null)).toBe(true);
    expect(read.unlinked).toHaveLength(2500);
    // Without `seen`: no membership asked, none answered.
    expect((await store.readChunk(TARGETS, ids.slice(0, 3))).seen).toBeUndefined();
    expect((await store.readChunk(TARGETS, [], { seen })).seen).toEqual([]);
  });

  it('splits a chunk: ids already seen or earlier in the chunk are duplicates, the rest is read in order', async () => {
    const seen = layout.runSeen('r2');
    await redis.sadd(seen, 'b');
    await store.saveWritten('sunshine', 'a', { name: 'A' }, 1000);
    await store.saveWritten('sunshine', 'c', { name: 'C' }, 1000);
    await store.saveWritten('prelude', 'c', { first_name: 'C' }, 1000);
    await store.saveWritten('sunshine', 'x', { name: 'X' }, 1000); // rejected in the source: not counted
    const ok = (id: string): SourceRecord => ({ ok: true, user: { id } });
    const records: SourceRecord[] = [
      ok('a'),
      ok('b'), // already in the seen set
      { ok: false, reason: 'no id' },
      { ok: false, userId: 'x', reason: 'bad email' },
      ok('c'),
      ok('a'), // earlier in this chunk
      ok('d'),
    ];
    const recIds = records.map((r) => (r.ok ? r.user.id : r.userId));
    const ids = recIds.filter((id): id is string => !!id);
    const read = await store.readChunk(TARGETS, ids, { prelude: true, seen });
    const split = splitFresh(records, recIds, TARGETS, read);
    expect(split.before).toEqual([false, true, false, false, false, true, false]);
    expect(split.fresh).toEqual([records[0], records[2], records[3], records[4], records[6]]);
    // The read of the fresh valid users a, c, d, in that order (what processChunk takes as `pre`).
    expect(split.read.states.map((col) => col.map((s) => (s ? s.fields : null)))).toEqual([
      [{ name: 'A' }, { name: 'C' }, null],
      [null, { first_name: 'C' }, null],
    ]);
    expect(split.read.unlinked).toEqual([null, null, null]);
    // Flags answer `ids` (a b x c a d): '1' for a fresh valid user with a state in that target.
    expect(split.stated).toEqual(
      new Map([
        ['sunshine', '100100'],
        ['prelude', '000100'],
      ]),
    );
  });

  it('counts the ids of the chunk before as seen while its seen-recording may still be under way', async () => {
    // The pipeline (jobs/scan.ts) sends a chunk's read while the chunk before is decided: that chunk's
    // ids may not be in the seen set yet, so they are passed in (`also`) and found as duplicates.
    const records: SourceRecord[] = [
      { ok: true, user: { id: 'm' } },
      { ok: true, user: { id: 'n' } },
    ];
    const read = await store.readChunk(TARGETS, ['m', 'n'], { prelude: true, seen: layout.runSeen('r4') });
    expect(read.seen).toEqual([false, false]);
    const split = splitFresh(records, ['m', 'n'], TARGETS, read, ['k', 'n']);
    expect(split.before).toEqual([false, true]);
    expect(split.fresh).toEqual([records[0]]);
    expect(split.stated.get('sunshine')).toBe('00');
  });

  it('passes the read as it is when every record is a fresh valid user', async () => {
    const records: SourceRecord[] = [
      { ok: true, user: { id: 'p' } },
      { ok: true, user: { id: 'q' } },
    ];
    const read = await store.readChunk(TARGETS, ['p', 'q'], { prelude: true, seen: layout.runSeen('r3') });
    const split = splitFresh(records, ['p', 'q'], TARGETS, read);
    expect(split.read).toBe(read);
    expect(split.fresh).toEqual(records);
    expect(split.stated).toEqual(
      new Map([
        ['sunshine', '00'],
        ['prelude', '00'],
      ]),
    );
  });
});
