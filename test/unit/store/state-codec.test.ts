import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashFields } from '../../../src/core/hashing.js';
import type { FieldMap } from '../../../src/core/types.js';
import { RedisLayout } from '../../../src/store/redis-layout.js';
import {
  encodeState,
  keySetOf,
  sameAsValue,
  splitState,
  writtenAtOf,
} from '../../../src/store/state-codec.js';
import { StateStore } from '../../../src/store/state-store.js';
import { cleanPrefix, redisClient, testPrefix } from '../../helpers/redis.js';
import { plainState as plain } from '../../helpers/state.js';

/** Issue 11.4: the compact state value (no stored hash, key names once per install), and v1 values. */
describe('state values (issue 11.4)', () => {
  const prefix = testPrefix('statecodec');
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

  const sunshine: FieldMap = {
    name: 'Léa "Nguyễn", Jr.',
    'identifiers.external_id': 'ou=sales/0001',
    'identifiers.email': 'lea@example.com',
    'attributes.first_name': 'Léa',
    'attributes.vip': true,
    'attributes.score': 3,
  };

  it('stores no hash and no key names per user, and reads back the exact payload', async () => {
    await store.saveWritten('sunshine', 'ou=sales/0001', sunshine, 1_800_000_000_123);
    const raw = (await redis.hget(layout.state('sunshine'), 'ou=sales/0001'))!;
    expect(raw).not.toContain('identifiers');
    expect(raw).not.toContain(hashFields(sunshine));
    expect(raw).not.toContain('ou=sales/0001'); // the value equal to the user id is written null
    expect(raw.length).toBeLessThan(JSON.stringify(sunshine).length);
    expect(writtenAtOf(raw)).toBe(1_800_000_000_123);
    // A fresh store (another process) reads the key list from Redis.
    const other = new StateStore(redis, layout);
    const s = (await other.get('sunshine', 'ou=sales/0001'))!;
    expect(s.fields).toEqual(sunshine);
    expect(typeof s.fields['attributes.vip']).toBe('boolean');
    expect(s.hash).toBe(hashFields(sunshine));
    expect(s.writtenAt).toBe(1_800_000_000_123);
    expect(await redis.hget(layout.stateKeys('sunshine'), keySetOf(sunshine).id)).toBe(
      JSON.stringify(Object.keys(sunshine).sort()),
    );
  });

  it('decides unchanged by the encoding: any value, type, added or removed key is a change', async () => {
    const [s] = await store.getMany('sunshine', ['ou=sales/0001']);
    const same = (next: FieldMap) => store.sameAs('sunshine', s ?? null, 'ou=sales/0001', next);
    // Key order does not matter.
    expect(same(Object.fromEntries(Object.entries(sunshine).reverse()))).toBe(true);
    expect(same({ ...sunshine, name: 'Léa' })).toBe(false);
    expect(same({ ...sunshine, 'attributes.score': '3' })).toBe(false);
    expect(same({ ...sunshine, 'attributes.extra': 'x' })).toBe(false);
    const { 'attributes.vip': _, ...fewer } = sunshine;
    expect(same(fewer)).toBe(false);
    // The user-id shorthand is per user: another user with the same payload is not "the same".
    expect(store.sameAs('sunshine', s ?? null, 'ou=sales/0002', sunshine)).toBe(false);
    expect(store.sameAs('sunshine', null, 'ou=sales/0001', sunshine)).toBe(false);
  });

  it('compares token by token exactly as the encoding would (issue 11): escapes, unicode, numbers, the id', () => {
    const id = 'u"1\\x';
    const tricky = [
      'plain',
      '',
      'Léa García',
      'quote " inside',
      'back \\ slash',
      'tab\tnew\nline\u0001',
      'emoji 😀 pair',
      'lone \ud800 surrogate',
      'sep \u2028 \u2029',
      id,
      `${id}x`,
    ];
    const values: FieldMap[] = [];
    for (const a of tricky) for (const b of [1, 0, -2.5, 1e21, true, false, 'x', a]) values.push({ a, b });
    const lists = new Map<string, string>();
    for (const v of values) {
      const ks = keySetOf(v);
      lists.set(ks.id, ks.json);
      const raw = encodeState(id, v, 1, ks, false);
      for (const w of values) {
        const expected =
          raw.slice(raw.indexOf(',')) === encodeState(id, w, 1, keySetOf(w), false).slice(raw.indexOf(','));
        expect(sameAsValue(raw, id, w, lists), `${JSON.stringify(v)} vs ${JSON.stringify(w)}`).toBe(expected);
      }
      // A value cut short, or one with something after it, is no match.
      expect(sameAsValue(raw.slice(0, -1), id, v, lists)).toBe(false);
      expect(sameAsValue(`${raw.slice(0, -1)},1]`, id, v, lists)).toBe(false);
      expect(sameAsValue(raw, id, v, lists)).toBe(true);
    }
  });

  it('keeps the keys inline when the key set id names another list (a collision)', async () => {
    const fields: FieldMap = { first_name: 'Bo', email: 'bo@example.com' };
    const ks = keySetOf(fields);
    await redis.hset(layout.stateKeys('zephr'), ks.id, JSON.stringify(['something', 'else']));
    const fresh = new StateStore(redis, layout);
    await fresh.saveWritten('zephr', 'u-9', fields, 5000);
    const raw = (await redis.hget(layout.state('zephr'), 'u-9'))!;
    expect(splitState(raw)).toMatchObject({
      v: 2,
      writtenAt: 5000,
      body: '{"email":"bo@example.com","first_name":"Bo"}',
    });
    const [s] = await fresh.getMany('zephr', ['u-9']);
    expect(s!.fields).toEqual(fields);
    expect(fresh.sameAs('zephr', s ?? null, 'u-9', { email: 'bo@example.com', first_name: 'Bo' })).toBe(true);
    expect(fresh.sameAs('zephr', s ?? null, 'u-9', { email: 'bo@example.com', first_name: 'Bob' })).toBe(
      false,
    );
    // The stored list of the id is not overwritten.
    expect(await redis.hget(layout.stateKeys('zephr'), ks.id)).toBe('["something","else"]');
  });

  it('reads a v1 value (before issue 11.4) and rewrites it as v2 only on an upgrading read', async () => {
    const fields: FieldMap = { first_name: 'Ann', last_name: 'Lee', email: 'ann@example.com' };
    const v1 = JSON.stringify({ h: hashFields(fields), f: fields, t: 1234 });
    await redis.hset(layout.state('prelude'), 'u:1', v1, 'u:2', v1);
    const s = (await store.get('prelude', 'u:1'))!;
    expect(plain(s)).toEqual({ hash: hashFields(fields), fields, writtenAt: 1234 });
    expect(store.sameAs('prelude', s, 'u:1', { ...fields })).toBe(true);
    expect(store.sameAs('prelude', s, 'u:1', { ...fields, last_name: 'Li' })).toBe(false);
    expect(await redis.hget(layout.state('prelude'), 'u:1')).toBe(v1); // a plain read writes nothing
    const [a, b] = await store.getMany('prelude', ['u:1', 'u:2'], { upgrade: true });
    expect(a!.fields).toEqual(fields);
    expect(b!.fields).toEqual(fields);
    for (const id of ['u:1', 'u:2']) {
      const raw = (await redis.hget(layout.state('prelude'), id))!;
      expect(raw.startsWith('{')).toBe(false);
      expect(writtenAtOf(raw)).toBe(1234);
      const [again] = await new StateStore(redis, layout).getMany('prelude', [id]);
      expect(plain(again)).toEqual({ hash: hashFields(fields), fields, writtenAt: 1234 });
    }
  });

  it('reads several targets at once exactly as one target at a time, absent users as null', async () => {
    const ids = ['ou=sales/0001', 'nobody', 'u-9', 'u:1'];
    const many = await store.getManyTargets(['sunshine', 'zephr', 'prelude'], ids);
    for (const [k, t] of (['sunshine', 'zephr', 'prelude'] as const).entries()) {
      const one = await store.getMany(t, ids);
      expect(many[k]!.map(plain)).toEqual(one.map(plain));
    }
    expect(many[0]![1]).toBeNull();
    expect(many[0]![0]!.fields).toEqual(sunshine);
  });

  it('a key whose value is undefined is no key (as in the hash of issue 1)', async () => {
    const a = { first_name: 'Al', last_name: 'Bo' };
    await store.saveWritten('zephr', 'u-10', a, 1);
    const [s] = await store.getMany('zephr', ['u-10']);
    expect(store.sameAs('zephr', s ?? null, 'u-10', { ...a, email: undefined } as never)).toBe(true);
    // The cache of key lists is not fooled by a payload with the same keys, one of them undefined.
    expect(
      store.sameAs('zephr', s ?? null, 'u-10', { first_name: 'Al', last_name: undefined } as never),
    ).toBe(false);
  });

  it('Redis emptied under a process: its next write stores the key list again', async () => {
    const fields: FieldMap = { first_name: 'Cy', last_name: 'Do', email: 'cy@example.com' };
    await store.saveWritten('prelude', 'e-1', fields, 10);
    await cleanPrefix(redis, prefix); // every key gone; this store's cache still knows the list
    await store.saveWritten('prelude', 'e-2', fields, 20);
    const [s] = await new StateStore(redis, layout).getMany('prelude', ['e-2']);
    expect(s!.fields).toEqual(fields);
  });

  it('findGone reads the write time of both formats', () => {
    expect(writtenAtOf(JSON.stringify({ h: 'x', f: {}, t: 42 }))).toBe(42);
    expect(writtenAtOf(`${(1_800_000_000_000).toString(36)},abcdef[]`)).toBe(1_800_000_000_000);
    expect(() => splitState('garbage')).toThrow(/unreadable state value/);
  });
});
