import { describe, expect, it } from 'vitest';
import { Bloom } from '../../../src/core/bloom.js';
import { fnv1a } from '../../../src/store/mutations.js';

const add = (bloom: Bloom, text: string) => bloom.addHash(fnv1a(text));
const id = (i: number) => `user-${i.toString(16).padStart(8, '0')}-${(i * 2654435761) >>> 0}`;

describe('Bloom (the scan duplicate check, issue 11)', () => {
  it('never answers "new" for a string added before, at and far past the expected count', () => {
    const bloom = new Bloom(1_000);
    for (let i = 0; i < 20_000; i++) add(bloom, id(i));
    // Filled to 20 times its size: it answers "maybe" more, never a wrong "new".
    for (let i = 0; i < 20_000; i++) expect(add(bloom, id(i))).toBe(true);
  });

  it('answers "new" for nearly every string not added (16 bits a string: about 1 in 1,000 is a maybe)', () => {
    const n = 50_000;
    const bloom = new Bloom(n);
    let maybes = 0;
    for (let i = 0; i < n; i++) if (add(bloom, id(i))) maybes++;
    // Each add is asked before it sets its bits: a "maybe" there is a false one (all ids differ).
    expect(maybes).toBeLessThan(n / 500);
    let strangers = 0;
    for (let i = n; i < 2 * n; i++) if (add(bloom, id(i))) strangers++;
    expect(strangers).toBeLessThan(n / 200);
  });

  it('tells apart strings that differ in one character, in their length, or in a character past 0xff', () => {
    const bloom = new Bloom(100);
    expect(add(bloom, 'user-1')).toBe(false);
    expect(add(bloom, 'user-2')).toBe(false);
    expect(add(bloom, 'user-1 ')).toBe(false);
    expect(add(bloom, 'usér-1')).toBe(false);
    expect(add(bloom, 'us\u0165r-1')).toBe(false);
    expect(add(bloom, '')).toBe(false);
    expect(add(bloom, '')).toBe(true);
    expect(add(bloom, 'user-1')).toBe(true);
  });
});
