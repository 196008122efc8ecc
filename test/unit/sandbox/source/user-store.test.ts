import { describe, expect, it } from 'vitest';
import { mutateUsers } from '../../../../src/sandbox/source/mutations.js';
import { UserStore } from '../../../../src/sandbox/source/user-store.js';

const users = () =>
  new UserStore([
    { id: 'b', firstName: 'Zoë', lastName: 'A', email: 'b@x.test' },
    { id: 'a', firstName: 'Anna', lastName: null, email: 'A@X.test' },
    { id: 'c', firstName: 'Anna', email: 'c@y.test' },
    { id: 'd', firstName: 'Ben', lastName: 'A' },
  ]);

describe('UserStore', () => {
  it('lists in id order by default and pages stably', () => {
    const s = users();
    expect(s.query({}).map((u) => u.id)).toEqual(['a', 'b', 'c', 'd']);
    expect(s.query({}, undefined, 1, 2).map((u) => u.id)).toEqual(['b', 'c']);
    expect(s.query({}, undefined, 3, 5).map((u) => u.id)).toEqual(['d']);
    expect(s.query({}, undefined, 0, 0)).toEqual([]);
  });

  it('sorts by the key then by id, missing values first ascending and last descending', () => {
    const s = users();
    expect(s.query({}, { by: 'firstName', order: 'asc' }).map((u) => u.id)).toEqual(['a', 'c', 'd', 'b']);
    expect(s.query({}, { by: 'firstName', order: 'desc' }).map((u) => u.id)).toEqual(['b', 'd', 'a', 'c']);
    expect(s.query({}, { by: 'lastName', order: 'asc' }).map((u) => u.id)).toEqual(['a', 'c', 'b', 'd']);
    expect(s.query({}, { by: 'lastName', order: 'desc' }).map((u) => u.id)).toEqual(['b', 'd', 'a', 'c']);
    expect(s.query({}, { by: 'userId', order: 'desc' }).map((u) => u.id)).toEqual(['d', 'c', 'b', 'a']);
  });

  it('re-sorts after a profile update', () => {
    const s = users();
    expect(s.query({}, { by: 'firstName', order: 'asc' })[0]!.id).toBe('a');
    s.updateProfile('a', { firstName: 'Zz' });
    expect(s.query({}, { by: 'firstName', order: 'asc' }).map((u) => u.id)).toEqual(['c', 'd', 'b', 'a']);
    expect(s.get('a')).toEqual({ id: 'a', firstName: 'Zz', lastName: null, email: null });
  });

  it('filters exactly (case-sensitive) and with LIKE wildcards, and counts with the same filters', () => {
    const s = users();
    expect(s.query({ email: 'a@x.test' })).toEqual([]);
    expect(s.query({ email: 'A@X.test' }).map((u) => u.id)).toEqual(['a']);
    expect(s.query({ idIn: ['d', 'a', 'zz'] }).map((u) => u.id)).toEqual(['a', 'd']);
    expect(s.query({ firstName: 'Anna', emailLike: '%@y.%' }).map((u) => u.id)).toEqual(['c']);
    expect(s.query({ lastNameLike: '_' }).map((u) => u.id)).toEqual(['b', 'd']);
    expect(s.count({ firstName: 'Anna' })).toBe(2);
    expect(s.count({})).toBe(4);
    expect(s.query({ firstName: 'Anna' }, undefined, 1).map((u) => u.id)).toEqual(['c']);
  });

  it('stores raw records without a string id under keys no URL reaches', () => {
    const s = users();
    s.put({ firstName: 42 });
    s.put({ id: 7 });
    expect(s.size).toBe(6);
    expect(s.ids()).toEqual(['a', 'b', 'c', 'd']);
    expect(s.query({}).slice(0, 2)).toEqual([{ firstName: 42 }, { id: 7 }]);
  });
});

describe('mutateUsers', () => {
  it('changes round(share * n) users deterministically, each field to a new value', () => {
    const make = () =>
      new UserStore(
        Array.from({ length: 100 }, (_, i) => ({
          id: `u${i}`,
          firstName: 'Anna',
          lastName: 'Smith',
          email: `u${i}@x.test`,
        })),
      );
    const s1 = make();
    const changed = mutateUsers(s1, 0.05, 9);
    expect(changed).toHaveLength(5);
    expect(mutateUsers(make(), 0.05, 9)).toEqual(changed);
    expect(mutateUsers(make(), 0.05, 10)).not.toEqual(changed);
    for (const id of changed) {
      const u = s1.get(id)!;
      expect(u.firstName).not.toBe('Anna');
      expect(u.lastName).not.toBe('Smith');
      expect(u.email).toBe(`${id}.m9@x.test`);
    }
    const s2 = make();
    const onlyEmail = mutateUsers(s2, 0.1, 3, ['email']);
    expect(onlyEmail).toHaveLength(10);
    expect(s2.get(onlyEmail[0]!)).toMatchObject({ firstName: 'Anna', lastName: 'Smith' });
  });
});
