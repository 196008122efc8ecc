import { describe, expect, it } from 'vitest';
import { userKey } from '../../../src/core/hashing.js';
import { brakeReason } from '../../../src/pipeline/deletions.js';
import { containsToken, userMatcher } from '../../../src/pipeline/erasure-sweep.js';

describe('the brake rule', () => {
  const limits = { maxDeleteRate: 0.05, maxDeletes: 1000 };

  it('holds above the rate or the count, per acting target; ignore never counts', () => {
    expect(brakeReason({ sunshine: { policy: 'delete', known: 1000, gone: 50 } }, limits)).toBeNull();
    expect(brakeReason({ sunshine: { policy: 'delete', known: 1000, gone: 51 } }, limits)).toContain(
      'sunshine: 51 of 1000 known users (5.1%) > MAX_DELETE_RATE 5%',
    );
    expect(brakeReason({ zephr: { policy: 'clear', known: 100_000, gone: 1001 } }, limits)).toContain(
      'zephr: 1001 removals > MAX_DELETES 1000',
    );
    expect(brakeReason({ prelude: { policy: 'ignore', known: 10, gone: 10 } }, limits)).toBeNull();
    expect(brakeReason({ sunshine: { policy: 'delete', known: 0, gone: 0 } }, limits)).toBeNull();
  });
});

describe('erasure matching', () => {
  it('matches an id as a whole token only: user-1 is not inside user-10', () => {
    expect(containsToken('user-1', 'user-1')).toBe(true);
    expect(containsToken('{"userId":"user-1"}', 'user-1')).toBe(true);
    expect(containsToken('{"userId":"user-10"}', 'user-1')).toBe(false);
    expect(containsToken('xuser-1', 'user-1')).toBe(false);
    expect(containsToken('/users/user-1/profile', 'user-1')).toBe(true);
    // after a percent-encoded separator (an identifier query)
    expect(containsToken('identity%3Auser%3Aexternal_id%3Auser-1', 'user-1')).toBe(true);
    expect(containsToken('identity%3Auser%3Aexternal_id%3Auser-12', 'user-1')).toBe(false);
  });

  it('a numeric id does not match JSON numbers or counters', () => {
    const m = userMatcher('42', userKey('42'), []);
    expect(m('{"attempts":42,"durationMs":42}')).toBe(false);
    expect(m('[42,43]')).toBe(false);
    expect(m('42')).toBe(false); // a BullMQ id counter
    expect(m('{"userId":"42"}')).toBe(true);
    expect(m('/v2/session/apps/x/users/42/profile')).toBe(true);
    expect(m('identity%3Auser%3Aexternal_id%3A42')).toBe(true);
  });

  it('matches job ids by the id hash, emails case-insensitively, and nothing of another user', () => {
    const m = userMatcher('a:b/c', userKey('a:b/c'), ['jane@example.com']);
    expect(m(`sync-zephr-20261123T184703Z-c29f-${userKey('a:b/c')}`)).toBe(true);
    expect(m(`sunshine/${userKey('a:b/c')}`)).toBe(true);
    expect(m('/v2/session/apps/x/users/a%3Ab%2Fc/profile')).toBe(true);
    expect(m('{"email":"Jane@Example.com"}')).toBe(true);
    expect(m(`sync-zephr-20261123T184703Z-c29f-${userKey('a:b/cd')}`)).toBe(false);
    expect(m('{"userId":"a:b/cd","email":"j***@example.com"}')).toBe(false);
  });
});
