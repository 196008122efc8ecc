import { describe, expect, it } from 'vitest';
import { mergePatch } from '../../../../src/sandbox/sunshine/merge-patch.js';

describe('mergePatch (RFC 7396, 001 "Updating the attributes object")', () => {
  it('adds new keys, updates existing ones and leaves the others', () => {
    const before = { favorite_color: 'red', saddle_height: '85cm' };
    expect(mergePatch(before, { saddle_height: '87cm', joined: '2018' })).toEqual({
      favorite_color: 'red',
      saddle_height: '87cm',
      joined: '2018',
    });
    expect(before).toEqual({ favorite_color: 'red', saddle_height: '85cm' });
  });

  it('removes a key sent as null and merges nested objects', () => {
    expect(mergePatch({ a: 1, b: { c: 1, d: 2 } }, { a: null, b: { d: 3 } })).toEqual({ b: { c: 1, d: 3 } });
    expect(mergePatch({ a: [1, 2] }, { a: [3] })).toEqual({ a: [3] });
  });
});
