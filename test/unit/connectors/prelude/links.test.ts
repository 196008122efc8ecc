import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseCsv, parseLinkCsv } from '../../../../src/connectors/prelude/links-csv.js';
import { createLinkStore, decodeLink, encodeLink, linkIdOf, linksKey } from '../../../../src/store/links.js';
import { RedisLayout } from '../../../../src/store/redis-layout.js';
import { StateStore } from '../../../../src/store/state-store.js';
import { cleanPrefix, keysOf, redisClient, testPrefix } from '../../../helpers/redis.js';

describe('link CSV (RFC 4180)', () => {
  it('parses quoted fields with commas, doubled quotes and line breaks; CRLF; BOM', () => {
    const text =
      '\uFEFFsource_id,prelude_user_id\r\n"a,1",usr_1\r\n"say ""hi""",usr_2\n"multi\nline",usr_3\n\nplain id ,  usr_4  \n';
    const { rows, errors } = parseLinkCsv(text);
    // A line break inside a quoted field is parsed (the line count goes on after it), but no source
    // id holds one: the source connector refuses control characters.
    expect(errors).toEqual(['line 4: source_id holds a control character']);
    expect(rows).toEqual([
      { sourceId: 'a,1', preludeUserId: 'usr_1', line: 2 },
      { sourceId: 'say "hi"', preludeUserId: 'usr_2', line: 3 },
      { sourceId: 'plain id ', preludeUserId: 'usr_4', line: 7 },
    ]);
  });

  it('refuses prelude_user_id . and .. (they would change the request path), by line (issue 8.9)', () => {
    const text = 'source_id,prelude_user_id\nu1,..\nu2, . \nu3,"..."\nu4,usr_..\n';
    const { rows, errors } = parseLinkCsv(text);
    expect(rows.map((r) => [r.sourceId, r.preludeUserId])).toEqual([
      ['u3', '...'],
      ['u4', 'usr_..'],
    ]);
    expect(errors).toHaveLength(2);
    expect(errors[0]).toMatch(/^line 2: prelude_user_id "\.\." is '\.\.'/);
    expect(errors[1]).toMatch(/^line 3: prelude_user_id "\." is '\.'/);
  });

  it('refuses a control character in either id, by line (it failed the whole import without one)', () => {
    const text = 'source_id,prelude_user_id\nu1,usr_1\nu2,"usr\u00012"\n"u\t3",usr_3\nu4,usr_4\n';
    const { rows, errors } = parseLinkCsv(text);
    expect(rows.map((r) => r.sourceId)).toEqual(['u1', 'u4']);
    expect(errors).toEqual([
      'line 3: prelude_user_id holds a control character',
      'line 4: source_id holds a control character',
    ]);
  });

  it('reports every bad row by line number', () => {
    const text = [
      'source_id,prelude_user_id',
      'u1,usr_1',
      'u2',
      ',usr_3',
      'u4,',
      'u1,usr_5',
      'u6,usr_6,extra',
      'u"7,usr_7',
      '"u8"x,usr_8',
      '"u9,usr_9',
    ].join('\n');
    const { rows, errors } = parseLinkCsv(text);
    expect(rows.map((r) => r.sourceId)).toEqual(['u1']);
    expect(errors).toEqual([
      'line 3: expected 2 fields (source_id,prelude_user_id), found 1',
      'line 4: empty source_id',
      'line 5: empty prelude_user_id',
      'line 6: source_id already on line 2',
      'line 7: expected 2 fields (source_id,prelude_user_id), found 3',
      'line 8: a quote inside an unquoted field (quote the field and double it)',
      'line 9: text after a closing quote (a quote inside a field must be doubled: "")',
      'line 10: unterminated quoted field',
    ]);
  });

  it('requires the header', () => {
    expect(parseLinkCsv('u1,usr_1\n').errors).toEqual([
      'line 1: the header must be "source_id,prelude_user_id"',
    ]);
    expect(parseLinkCsv('').errors).toHaveLength(1);
    expect(parseCsv('a,b\n\n')).toEqual([{ fields: ['a', 'b'], line: 1, error: undefined }]);
  });
});

describe('LinkStore (Redis hash {prefix}:links:prelude)', () => {
  let redis: Redis;
  const prefix = testPrefix('links');
  beforeAll(() => {
    redis = redisClient();
  });
  afterEach(async () => {
    await cleanPrefix(redis, prefix);
  });
  afterAll(async () => {
    await cleanPrefix(redis, prefix);
    await redis.quit();
  });

  it('imports, gets one and many, counts, lists, removes', async () => {
    const store = createLinkStore(redis, prefix);
    const rows = Array.from({ length: 2500 }, (_, i) => ({ sourceId: `u:${i}`, preludeUserId: `usr_${i}` }));
    expect(await store.import(rows)).toBe(2500);
    // Issue 11.4: how and when are in the link's value: one hash (before: a second, `:how`). Issue 11:
    // and the mutation counters its writes bump (src/store/mutations.ts).
    expect((await keysOf(redis, prefix)).sort()).toEqual([
      `{${prefix}}:links:prelude`,
      `{${prefix}}:mutations`,
    ]);
    expect(linksKey(prefix)).toBe(`{${prefix}}:links:prelude`);
    expect(await store.get('u:7')).toBe('usr_7');
    expect(await store.get('nobody')).toBeUndefined();
    const many = await store.getMany(['u:1', 'nobody', 'u:2499']);
    expect([...many]).toEqual([
      ['u:1', 'usr_1'],
      ['u:2499', 'usr_2499'],
    ]);
    expect(await store.count()).toBe(2500);
    let listed = 0;
    for await (const [k, v] of store.entries()) {
      expect(v).toBe(`usr_${k.slice(2)}`);
      listed++;
    }
    expect(listed).toBe(2500);
    expect(await store.remove(['u:1', 'nobody'])).toBe(1);
    expect(await store.count()).toBe(2499);
    await store.import([{ sourceId: 'x', preludeUserId: 'usr_x' }], { replace: true });
    expect(await store.count()).toBe(1);
  });

  it('issue 10: found links never replace an existing (imported) one; how and when are kept; drop is conditional', async () => {
    const store = createLinkStore(redis, prefix);
    await store.import([{ sourceId: 'imp', preludeUserId: 'usr_imported' }]);
    const found = [
      { sourceId: 'imp', preludeUserId: 'usr_looked_up', how: 'external_id' as const },
      { sourceId: 'a', preludeUserId: 'usr_a', how: 'external_id' as const },
      { sourceId: 'b', preludeUserId: 'usr_b', how: 'email' as const },
    ];
    expect(await store.addFound(found, 1_000)).toBe(2);
    // A lookup repeated after a crash stores nothing new.
    expect(await store.addFound(found, 2_000)).toBe(0);
    expect(await store.get('imp')).toBe('usr_imported');
    const info = await store.info(['imp', 'a', 'b', 'nobody']);
    expect(info.get('imp')?.how).toBe('import');
    expect(info.get('a')).toEqual({ how: 'external_id', at: 1_000 });
    expect(info.get('b')).toEqual({ how: 'email', at: 1_000 });
    expect(info.has('nobody')).toBe(false);
    // An import replaces a looked-up link (imported links win).
    await store.import([{ sourceId: 'a', preludeUserId: 'usr_a2' }]);
    expect(await store.get('a')).toBe('usr_a2');
    expect((await store.info(['a'])).get('a')?.how).toBe('import');
    // user_not_found at usr_b: dropped only while the link still points there.
    expect(await store.drop('b', 'usr_other')).toBe(false);
    expect(await store.drop('b', 'usr_b')).toBe(true);
    expect(await store.get('b')).toBeUndefined();
    expect((await store.info(['b'])).size).toBe(0);
    expect(await store.remove(['a'])).toBe(1);
    expect((await store.info(['a'])).size).toBe(0);
  });

  it('issue 11.4: one value holds the link, how and when; a usr_ id in 29 bytes (the 32-byte allocation of the bare id)', async () => {
    const store = createLinkStore(redis, prefix);
    const at = Date.UTC(2026, 10, 30, 1, 2, 3);
    const usr = 'usr_01jy1w6s3gtxgazcz4pw2wdzxm';
    const compact = encodeLink(usr, 'external_id', at);
    expect(compact).toHaveLength(29);
    expect(compact.charCodeAt(0)).toBe(2);
    expect(decodeLink(compact)).toEqual({ preludeUserId: usr, info: { how: 'external_id', at } });
    // Every character of the alphabet, at every position, round-trips.
    const b32 = '0123456789abcdefghjkmnpqrstvwxyz';
    for (let shift = 0; shift < 32; shift++) {
      const id = `usr_${Array.from({ length: 26 }, (_, i) => b32[(i * 7 + shift) % 32]).join('')}`;
      expect(linkIdOf(encodeLink(id, 'create', at))).toBe(id);
    }
    // Other ids (and times before 2020): the general form, ms kept.
    expect(encodeLink('plain-7', 'email', 1_000)).toBe(`plain-7\u001fe${(1_000).toString(36)}`);
    expect(decodeLink(encodeLink('USR_X', 'create', 5))).toEqual({
      preludeUserId: 'USR_X',
      info: { how: 'create', at: 5 },
    });
    expect(() => encodeLink('bad\u001fid', 'create', at)).toThrow(/control character/);
    const found = [
      { sourceId: 'u1', preludeUserId: usr, how: 'external_id' as const },
      { sourceId: 'u2', preludeUserId: 'other-id', how: 'create' as const },
      { sourceId: 'u3', preludeUserId: 'usr_', how: 'email' as const },
    ];
    expect(await store.addFound(found, at)).toBe(3);
    expect(await redis.hlen(linksKey(prefix))).toBe(3);
    expect(await redis.hget(linksKey(prefix), 'u1')).toBe(compact);
    const many = await store.getMany(['u1', 'u2', 'u3']);
    expect([...many.values()]).toEqual(found.map((f) => f.preludeUserId));
    const entries = new Map<string, string>();
    for await (const [k, v] of store.entries()) entries.set(k, v);
    expect(entries).toEqual(many);
    const info = await store.info(['u1', 'u2', 'u3']);
    expect([...info.values()]).toEqual(found.map((f) => ({ how: f.how, at })));
    expect(await store.drop('u1', 'usr_01jy1w6s3gtxgazcz4pw2wdzxn')).toBe(false);
    expect(await store.drop('u1', usr)).toBe(true);
    expect(await store.drop('u2', 'other')).toBe(false);
    expect(await store.drop('u2', 'other-id')).toBe(true);
    expect(await store.count()).toBe(1);
  });

  it('issue 11.4: reads the links written before it (bare id, how/when in a second hash), upgrades them in a scan', async () => {
    const layout = new RedisLayout(prefix);
    const store = createLinkStore(redis, prefix);
    // Old format: issue 10's two hashes, and a link from before issue 10 (no how/when at all).
    await redis.hset(linksKey(prefix), 'o1', 'usr_old1', 'o2', 'legacy-2', 'o3', 'usr_old3');
    await redis.hset(
      layout.linksHow(),
      'o1',
      JSON.stringify({ how: 'email', at: 1234 }),
      'o3',
      JSON.stringify({ how: 'import', at: 99 }),
    );
    const want = new Map([
      ['o1', 'usr_old1'],
      ['o2', 'legacy-2'],
      ['o3', 'usr_old3'],
    ]);
    expect(await store.get('o1')).toBe('usr_old1');
    expect(await store.getMany(['o1', 'o2', 'o3'])).toEqual(want);
    const wantInfo = new Map([
      ['o1', { how: 'email', at: 1234 }],
      ['o3', { how: 'import', at: 99 }],
    ]);
    expect(await store.info(['o1', 'o2', 'o3'])).toEqual(wantInfo);
    // The scan's read (readChunk) answers Prelude ids; with `upgrade` it rewrites the old values.
    const state = new StateStore(redis, layout);
    const ids = ['o1', 'o2', 'o3', 'none'];
    expect((await state.readChunk([], ids, { prelude: true })).links).toEqual(want);
    expect((await state.readChunk([], ids, { prelude: true, upgrade: true })).links).toEqual(want);
    expect(await redis.hget(linksKey(prefix), 'o1')).toBe(encodeLink('usr_old1', 'email', 1234));
    expect(await redis.hget(linksKey(prefix), 'o2')).toBe('legacy-2'); // nothing to fold in
    expect(await redis.hlen(layout.linksHow())).toBe(0);
    expect(await store.getMany(['o1', 'o2', 'o3'])).toEqual(want);
    expect(await store.info(['o1', 'o2', 'o3'])).toEqual(wantInfo);
    // An old link is dropped with its how/when.
    await redis.hset(linksKey(prefix), 'o4', 'usr_old4');
    await redis.hset(layout.linksHow(), 'o4', JSON.stringify({ how: 'external_id', at: 5 }));
    expect(await store.drop('o4', 'usr_old4')).toBe(true);
    expect(await redis.hexists(layout.linksHow(), 'o4')).toBe(0);
  });
});
