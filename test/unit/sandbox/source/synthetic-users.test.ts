import { describe, expect, it } from 'vitest';
import {
  syntheticId,
  syntheticUser,
  syntheticUsers,
} from '../../../../src/sandbox/source/synthetic-users.js';

describe('synthetic users', () => {
  it('are the same for the same seed and differ for another', () => {
    expect(syntheticUsers(1, 200)).toEqual(syntheticUsers(1, 200));
    expect(syntheticUsers(2, 200)).not.toEqual(syntheticUsers(1, 200));
  });

  it('do not depend on how many are generated', () => {
    expect(syntheticUsers(5, 1000).slice(0, 50)).toEqual(syntheticUsers(5, 50));
    expect(syntheticUser(5, 17)).toEqual(syntheticUsers(5, 17)[16]);
  });

  it('have unique ids, mostly user-NNNNNN, and awkward ones from the first 50', () => {
    const ids = syntheticUsers(1, 5000).map((u) => u.id);
    expect(new Set(ids).size).toBe(5000);
    expect(ids.filter((id) => /^user-\d{6}$/.test(id)).length).toBe(4500);
    const first50 = syntheticUsers(1, 50).map((u) => u.id);
    for (const ch of [' ', '/', ':', '%', '+']) expect(first50.some((id) => id.includes(ch))).toBe(true);
    const first100 = syntheticUsers(1, 100).map((u) => u.id);
    expect(first100.some((id) => /[^\x20-\x7e]/.test(id))).toBe(true);
    for (const id of ids) {
      expect(id).not.toContain(',');
      expect(decodeURIComponent(encodeURIComponent(id))).toBe(id);
    }
    expect(syntheticId(3)).toBe('user 000003');
  });

  it('hold the awkward data on purpose: null last names and emails (all four keys, as Camunda), mixed case, non-ASCII', () => {
    const users = syntheticUsers(1, 1000);
    const share = (p: (u: (typeof users)[number]) => boolean) => users.filter(p).length / users.length;
    for (const u of users) expect(Object.keys(u).sort()).toEqual(['email', 'firstName', 'id', 'lastName']);
    expect(share((u) => u.lastName === null)).toBeGreaterThan(0.06);
    expect(share((u) => u.email === null)).toBeGreaterThan(0.03);
    expect(share((u) => typeof u.email === 'string' && u.email !== u.email.toLowerCase())).toBeGreaterThan(
      0.08,
    );
    expect(share((u) => /[^\x20-\x7e]/.test(u.firstName ?? ''))).toBeGreaterThan(0.2);
    expect(share((u) => /[\u3040-\u9fff\uac00-\ud7af]/.test(`${u.firstName}${u.lastName}`))).toBeGreaterThan(
      0.05,
    );
    for (const u of users) {
      if (typeof u.email === 'string') expect(u.email).toMatch(/^[\w.]+@[\w.-]+$/);
    }
  });
});
