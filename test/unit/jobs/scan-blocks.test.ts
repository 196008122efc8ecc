import { describe, expect, it } from 'vitest';
import { blockSetup } from '../../../jobs/scan-blocks.js';
import { compileMappings } from '../../../src/config/mapping.js';
import { mappingSchema } from '../../../src/config/mapping-schema.js';
import type { JobContext } from '../../../src/queue/context.js';
import type { RunOptions } from '../../../src/store/run-record.js';
import { decodeConclusion, encodeConclusion } from '../../../src/store/scan-blocks.js';

/** Issue 11: what a block conclusion depends on besides its users (jobs/scan-blocks.ts). */
describe('block conclusions: setup digest, mapping digest, value format', () => {
  const mappings = (mapping: unknown = {}) =>
    compileMappings({ mapping: mappingSchema.parse(mapping), configFile: '/etc/ps.yaml' });
  const ctx = (digests: Record<string, string | undefined>, recheckMs = 86_400_000) =>
    ({
      targets: Object.fromEntries(
        Object.entries(digests).map(([t, d]) => [t, d === undefined ? {} : { mappingDigest: d }]),
      ),
      settings: { unlinkedRecheckMs: recheckMs },
    }) as unknown as JobContext;
  const opts = (o: Partial<RunOptions> = {}) => ({ dryRun: false, full: false, ...o }) as RunOptions;

  it('a mapping digest follows the rules, not the object', () => {
    expect(mappings().zephr.digest).toBe(mappings().zephr.digest);
    expect(mappings().zephr.digest).not.toBe(mappings().prelude.digest);
    const changed = mappings({ zephr: { nickname: { from: 'firstName' } } });
    expect(changed.zephr.digest).not.toBe(mappings().zephr.digest);
    expect(changed.sunshine.digest).toBe(mappings().sunshine.digest);
  });

  it('the setup digest changes with any mapping, the targets and UNLINKED_RECHECK', () => {
    const base = blockSetup(ctx({ sunshine: 'a', zephr: 'b' }), opts(), ['sunshine', 'zephr'], false)!;
    expect(base.digest).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const again = blockSetup(ctx({ sunshine: 'a', zephr: 'b' }), opts(), ['sunshine', 'zephr'], false)!;
    expect(again.digest).toBe(base.digest);
    for (const other of [
      blockSetup(ctx({ sunshine: 'a', zephr: 'c' }), opts(), ['sunshine', 'zephr'], false),
      blockSetup(ctx({ sunshine: 'a', zephr: 'b' }), opts(), ['zephr', 'sunshine'], false),
      blockSetup(ctx({ sunshine: 'a', zephr: 'b' }), opts(), ['sunshine'], false),
      blockSetup(ctx({ sunshine: 'a', zephr: 'b' }, 1000), opts(), ['sunshine', 'zephr'], false),
    ])
      expect(other!.digest).not.toBe(base.digest);
  });

  it('none for dry runs, --full, limited runs and a target without a mapping digest', () => {
    const c = ctx({ sunshine: 'a', zephr: undefined });
    expect(blockSetup(c, opts(), ['sunshine'], false)).toBeDefined();
    expect(blockSetup(c, opts({ dryRun: true }), ['sunshine'], false)).toBeUndefined();
    expect(blockSetup(c, opts({ full: true }), ['sunshine'], false)).toBeUndefined();
    expect(blockSetup(c, opts(), ['sunshine'], true)).toBeUndefined();
    expect(blockSetup(c, opts(), ['sunshine', 'zephr'], false)).toBeUndefined();
  });

  it('a conclusion survives its encoding; anything else is not trusted', () => {
    const c = {
      digest: 'abcDEF0123456789',
      epoch: 4_000_000_000,
      sum: 77,
      validUntil: 1_796_000_000_000,
      codes: 'aaj',
    };
    expect(decodeConclusion(encodeConclusion(c))).toEqual(c);
    const open = { ...c, validUntil: undefined };
    expect(decodeConclusion(encodeConclusion(open))).toEqual(open);
    for (const bad of ['', 'x|y', 'a|b|c|d|e|f', 'abc|zz!|1||aa', 'abc|1|1|??|aa'])
      expect(decodeConclusion(bad)).toBeUndefined();
  });
});

/** Issue 11: the duplicate check with the scan's Bloom filter gives what the check of every id gives. */
describe('block reads: duplicates from the Bloom filter suspects', () => {
  it('agrees with the full check: repeats in the chunk, in the chunk before, in the seen set, ids missing', async () => {
    const { Bloom } = await import('../../../src/core/bloom.js');
    const { fnv1a } = await import('../../../src/store/mutations.js');
    const { suspectDuplicates } = await import('../../../jobs/scan-blocks.js');
    const { duplicates } = await import('../../../jobs/scan-chunk.js');
    let seed = 7;
    const rnd = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    for (let round = 0; round < 200; round++) {
      const pool = Array.from({ length: 40 }, (_, i) => `u${round}-${i}`);
      const inSet = new Set(pool.filter(() => rnd(4) === 0)); // read two chunks back or more
      const also = pool.filter((id) => !inSet.has(id) && rnd(5) === 0); // the chunk before
      const recIds = Array.from({ length: 30 }, () => (rnd(10) === 0 ? undefined : pool[rnd(pool.length)]));
      const ids = recIds.filter((id): id is string => !!id);
      // The filter as the scan has it: every id handed over before (the set, the chunk before).
      const bloom = new Bloom(100);
      for (const id of [...inSet, ...also]) bloom.addHash(fnv1a(id));
      const suspects = ids.flatMap((id, j) => (bloom.addHash(fnv1a(id)) ? [j] : []));
      const full = duplicates(
        recIds,
        ids.map((id) => inSet.has(id)),
        also,
      );
      const fromSuspects = suspectDuplicates(
        recIds,
        ids,
        suspects,
        suspects.map((j) => inSet.has(ids[j]!)),
        also,
      );
      expect(fromSuspects).toEqual(full);
      // The rounds hold every kind of duplicate.
      if (round === 0) expect(full.before.some(Boolean)).toBe(true);
    }
  });
});

describe('block digest: the users as the source returned them', () => {
  it('tells apart absent, null, empty and a value, in each field, and where a user ends', async () => {
    const { blockDigest } = await import('../../../jobs/scan-blocks.js');
    const users = [
      [{ id: 'a' }],
      [{ id: 'a', firstName: null }],
      [{ id: 'a', firstName: '' }],
      [{ id: 'a', firstName: 'b' }],
      [{ id: 'a', lastName: 'b' }],
      [{ id: 'a', email: 'b' }],
      [{ id: 'a', firstName: 'b', lastName: '' }],
      [{ id: 'a', firstName: '', lastName: 'b' }],
      [{ id: 'ab' }],
      [{ id: 'a' }, { id: 'b' }],
      [{ id: 'b' }, { id: 'a' }],
    ];
    const digests = users.map((u) => blockDigest('setup', u));
    expect(new Set(digests).size).toBe(users.length);
    expect(blockDigest('setup', [{ id: 'a', firstName: 'b' }])).toBe(digests[3]);
    expect(blockDigest('other setup', [{ id: 'a' }])).not.toBe(digests[0]);
    for (const d of digests) expect(d).toMatch(/^[A-Za-z0-9_-]{16}$/);
  });
});
