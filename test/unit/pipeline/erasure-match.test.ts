import { describe, expect, it } from 'vitest';
import { userKey } from '../../../src/core/hashing.js';
import { containsEmail, userMatcher } from '../../../src/pipeline/erasure-sweep.js';

describe('forget matches an email as a whole address (issue 8.7)', () => {
  const m = userMatcher('u-ann', userKey('u-ann'), ['ann@example.com']);

  it('matches the address as a JSON value, a member, a query or an identifier', () => {
    for (const s of [
      'ann@example.com',
      '{"email":"Ann@Example.com"}',
      '["ann@example.com"]',
      'GET /users?email=ann@example.com',
      'identity:user:email:ann@example.com',
      'identity%3Auser%3Aemail%3Aann@example.com',
      'mail to ann@example.com.',
    ])
      expect(m(s), s).toBe(true);
  });

  it("never matches another user's address that contains it", () => {
    for (const s of [
      'joann@example.com',
      '{"email":"joann@example.com"}',
      '{"email":"jo.ann@example.com"}',
      '{"email":"x+ann@example.com"}',
      '{"email":"ann@example.com.au"}',
      '{"email":"ann@example.community"}',
      '{"email":"jo-ann@example.com"}',
    ])
      expect(m(s), s).toBe(false);
  });

  it('containsEmail', () => {
    expect(containsEmail('joann@example.com ann@example.com', 'ann@example.com')).toBe(true);
    expect(containsEmail('joann@example.com', 'ann@example.com')).toBe(false);
    expect(containsEmail('', 'ann@example.com')).toBe(false);
  });
});
