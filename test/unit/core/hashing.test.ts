import { describe, expect, it } from 'vitest';
import { diffFields } from '../../../src/core/diff.js';
import { hashFields, stableStringify, userKey } from '../../../src/core/hashing.js';

describe('hashing', () => {
  it('hashes payloads independently of key order', () => {
    expect(stableStringify({ b: 1, a: { d: 'x', c: true } })).toBe('{"a":{"c":true,"d":"x"},"b":1}');
    expect(hashFields({ name: 'Ann', email: 'a@x.io' })).toBe(hashFields({ email: 'a@x.io', name: 'Ann' }));
    expect(hashFields({ name: 'Ann' })).not.toBe(hashFields({ name: 'Ann ' }));
    // A type change is a change: "1" and 1 are different payloads.
    expect(hashFields({ n: '1' })).not.toBe(hashFields({ n: 1 }));
  });

  it('derives a 16-hex user key usable in job ids whatever the id contains', () => {
    const k = userKey('a:b/c%d é');
    expect(k).toMatch(/^[0-9a-f]{16}$/);
    expect(userKey('a:b/c%d é')).toBe(k);
    expect(userKey('a:b/c%d e')).not.toBe(k);
  });
});

describe('diffFields', () => {
  it('lists added, changed and removed fields, sorted', () => {
    expect(diffFields({ a: 1, b: 'x', c: true }, { a: 1, b: 'y', d: 'new' })).toEqual({
      b: { from: 'x', to: 'y' },
      c: { from: true },
      d: { to: 'new' },
    });
    expect(Object.keys(diffFields({ z: 1 }, { a: 1 }))).toEqual(['a', 'z']);
  });

  it('treats no previous state as everything added, and equal maps as no diff', () => {
    expect(diffFields(null, { a: 'x' })).toEqual({ a: { to: 'x' } });
    expect(diffFields({ a: 'x' }, { a: 'x' })).toEqual({});
  });
});
