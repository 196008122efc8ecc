import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseCsv, parseLinkCsv } from '../../../../src/connectors/prelude/links-csv.js';
import { createLinkStore, linksKey } from '../../../../src/store/links.js';
import { cleanPrefix, keysOf, redisClient, testPrefix } from '../../../helpers/redis.js';

describe('link CSV (RFC 4180)', () => {
  it('parses quoted fields with commas, doubled quotes and line breaks; CRLF; BOM', () => {
    const text =
      '\uFEFFsource_id,prelude_user_id\r\n"a,1",usr_1\r\n"say ""hi""",usr_2\n"multi\nline",usr_3\n\nplain id ,  usr_4  \n';
    const { rows, errors } = parseLinkCsv(text);
    expect(errors).toEqual([]);
    expect(rows).toEqual([
      { sourceId: 'a,1', preludeUserId: 'usr_1', line: 2 },
      { sourceId: 'say "hi"', preludeUserId: 'usr_2', line: 3 },
      { sourceId: 'multi\nline', preludeUserId: 'usr_3', line: 4 },
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
    expect((await keysOf(redis, prefix)).sort()).toEqual([
      `{${prefix}}:links:prelude`,
      `{${prefix}}:links:prelude:how`,
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
});
