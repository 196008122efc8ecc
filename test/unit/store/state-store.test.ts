import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashFields } from '../../../src/core/hashing.js';
import { RedisLayout } from '../../../src/store/redis-layout.js';
import { StateStore, unlinkedIsFresh } from '../../../src/store/state-store.js';
import { fingerprintOf } from '../../../src/store/unlinked-marker.js';
import { cleanPrefix, keysOf, redisClient, testPrefix } from '../../helpers/redis.js';
import { plainState as plain } from '../../helpers/state.js';

describe('StateStore', () => {
  const prefix = testPrefix('state');
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

  it('keeps the last written payload, its stable hash and time per (target, user)', async () => {
    const fields = { name: 'Ann Lee', 'identifiers.email': 'ann@example.com' };
    await store.saveWritten('sunshine', 'u:1', fields, 1000);
    const s = await store.get('sunshine', 'u:1');
    expect(plain(s)).toEqual({ hash: hashFields(fields), fields, writtenAt: 1000 });
    expect(await store.get('zephr', 'u:1')).toBeNull();
    expect(await store.getMany('sunshine', ['nope', 'u:1'])).toEqual([null, s]);
    // Every key sits under the hash tag, so one Cluster slot holds them all.
    for (const k of await keysOf(redis, prefix)) expect(k.startsWith(`{${prefix}}:`)).toBe(true);
  });

  it('enumerates the users known per target (issue 5) and forgets one', async () => {
    for (let i = 0; i < 25; i++) await store.saveWritten('zephr', `user-${i}`, { first_name: `F${i}` });
    const seen: string[] = [];
    for await (const { userId, state } of store.users('zephr', 7)) {
      seen.push(userId);
      expect(state.fields.first_name).toBe(`F${userId.slice(5)}`);
    }
    expect(seen.sort()).toEqual(Array.from({ length: 25 }, (_, i) => `user-${i}`).sort());
    expect(await store.count('zephr')).toBe(25);
    await store.remove('zephr', 'user-3');
    expect(await store.count('zephr')).toBe(24);
  });

  it('keeps an unlinked marker that a later write clears', async () => {
    const fields = { first_name: 'Bo' };
    await store.markUnlinked('prelude', 'u-2', fields, 5000);
    const m = await store.getUnlinked('prelude', 'u-2');
    expect(m).toEqual({ at: 5000, hash: fingerprintOf(hashFields(fields)) });
    // Issue 11.4: base36 time and a 64-bit fingerprint, not JSON and a 64-hex hash.
    expect(await redis.hget(layout.unlinked('prelude'), 'u-2')).toBe(
      `3uw,${fingerprintOf(hashFields(fields))}`,
    );
    // Unlinked users are not "known": nothing was written for them.
    expect(await store.get('prelude', 'u-2')).toBeNull();
    expect(unlinkedIsFresh(m, hashFields(fields), 24 * 3600_000, 5000 + 3600_000)).toBe(true);
    // Recheck after the interval, or as soon as the source user changed.
    expect(unlinkedIsFresh(m, hashFields(fields), 24 * 3600_000, 5000 + 24 * 3600_000)).toBe(false);
    expect(unlinkedIsFresh(m, hashFields({ first_name: 'Bob' }), 24 * 3600_000, 6000)).toBe(false);
    await store.saveWritten('prelude', 'u-2', fields);
    expect(await store.getUnlinked('prelude', 'u-2')).toBeNull();
  });

  it('issue 11.4: reads the unlinked markers written before it (JSON with the whole sha256)', async () => {
    const fields = { first_name: 'Cy' };
    const old = JSON.stringify({ at: 7000, hash: hashFields(fields) });
    await redis.hset(layout.unlinked('prelude'), 'u-old', old);
    const m = await store.getUnlinked('prelude', 'u-old');
    expect(m).toEqual({ at: 7000, hash: hashFields(fields) });
    expect(unlinkedIsFresh(m, hashFields(fields), 3600_000, 8000)).toBe(true);
    expect(unlinkedIsFresh(m, hashFields({ first_name: 'Cyd' }), 3600_000, 8000)).toBe(false);
    // The scan's read (readChunk) too, beside a new-format marker.
    await store.markUnlinked('prelude', 'u-new', fields, 9000);
    const read = await store.readChunk([], ['u-old', 'u-new', 'nobody'], { prelude: true });
    expect(read.unlinked).toEqual([m, { at: 9000, hash: fingerprintOf(hashFields(fields)) }, null]);
    for (const marker of read.unlinked!.slice(0, 2))
      expect(unlinkedIsFresh(marker, hashFields(fields), 3600_000, 9500)).toBe(true);
  });
});
