import { describe, expect, it } from 'vitest';
import { SunshineError } from '../../../../src/sandbox/sunshine/errors.js';
import { parseIdentifierQuery } from '../../../../src/sandbox/sunshine/identifier-query.js';
import { SunshineStore, type SunshineStoreOptions } from '../../../../src/sandbox/sunshine/store.js';

const q = parseIdentifierQuery;
const email = (value: string) => ({ type: 'email', value });
const ext = (value: string) => ({ type: 'external_id', value });

function clock(start = Date.UTC(2026, 0, 1)) {
  let t = start;
  return { now: () => t, tick: (ms = 1000) => (t += ms) };
}

function store(options: SunshineStoreOptions = {}) {
  const c = clock();
  return { s: new SunshineStore({ now: c.now, ...options }), tick: c.tick };
}

function fails(fn: () => unknown, status: number, title?: RegExp): void {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SunshineError);
    expect((err as SunshineError).status).toBe(status);
    if (title) expect((err as SunshineError).title).toMatch(title);
    return;
  }
  expect.fail(`expected ${status}`);
}

describe('SunshineStore: PUT by identifier query', () => {
  it('creates a profile with source/type from the query, a 26-char id and timestamps', () => {
    const { s } = store();
    const { profile, created } = s.putByQuery(q('coolbikes:rider:email:jdoe@example.com'), {
      name: 'Jane Doe',
      identifiers: [email('jdoe@example.com')],
      attributes: { favorite_color: 'red' },
    });
    expect(created).toBe(true);
    expect(profile.id).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(profile).toMatchObject({
      name: 'Jane Doe',
      source: 'coolbikes',
      type: 'rider',
      identifiers: [email('jdoe@example.com')],
      attributes: { favorite_color: 'red' },
      created_at: '2026-01-01T00:00:00.000Z',
      updated_at: '2026-01-01T00:00:00.000Z',
    });
    expect(profile.user_id).toMatch(/^\d+$/);
    expect(s.get(profile.id)).toEqual(profile);
  });

  it('gives every new profile its own id', () => {
    const { s } = store();
    const ids = new Set<string>();
    for (let i = 0; i < 500; i++) {
      ids.add(s.putByQuery(q(`src:t:external_id:${i}`), { identifiers: [], attributes: {} }).profile.id);
    }
    expect(ids.size).toBe(500);
  });

  it("adds the query's identifier when the body lacks it", () => {
    const { s } = store();
    const { profile } = s.putByQuery(q('src:contact:external_id:42'), {
      identifiers: [email('a@x.io')],
      attributes: {},
    });
    expect(profile.identifiers).toEqual([email('a@x.io'), ext('42')]);
    expect(s.findByQuery(q('src:contact:external_id:42'))?.id).toBe(profile.id);
  });

  it('replaces the content of a match (200), keeping id, created_at, source, type and user_id', () => {
    const { s, tick } = store();
    const first = s.putByQuery(q('src:contact:external_id:42'), {
      name: 'Old',
      identifiers: [ext('42'), email('old@x.io'), { type: 'member', value: 'm1' }],
      attributes: { a: 1, b: 2 },
    }).profile;
    tick();
    const { profile, created } = s.putByQuery(q('src:contact:external_id:42'), {
      identifiers: [ext('42'), email('new@x.io')],
      attributes: { c: 3 },
    });
    expect(created).toBe(false);
    expect(profile).toEqual({
      id: first.id,
      name: 'new@x.io',
      source: 'src',
      type: 'contact',
      identifiers: [ext('42'), email('new@x.io')],
      attributes: { c: 3 },
      user_id: first.user_id,
      created_at: first.created_at,
      updated_at: '2026-01-01T00:00:01.000Z',
    });
    // Dropped identifiers no longer find the profile (001: PUT is how an identifier is removed).
    expect(s.findByQuery(q('src:contact:email:old@x.io'))).toBeUndefined();
    expect(s.findByQuery(q('src:contact:member:m1'))).toBeUndefined();
    expect(s.findByQuery(q('src:contact:email:new@x.io'))?.id).toBe(first.id);
  });

  it('scopes identifier queries to source and type', () => {
    const { s } = store();
    const a = s.putByQuery(q('src:contact:email:a@x.io'), { identifiers: [], attributes: {} }).profile;
    const b = s.putByQuery(q('src:lead:email:a@x.io'), { identifiers: [], attributes: {} });
    expect(b.created).toBe(true);
    expect(b.profile.id).not.toBe(a.id);
    // Same email: the same Zendesk user.
    expect(b.profile.user_id).toBe(a.user_id);
    expect(s.findByQuery(q('other:contact:email:a@x.io'))).toBeUndefined();
  });

  it('lowercases email and twitter values and matches queries on them case-insensitively', () => {
    const { s } = store();
    const { profile } = s.putByQuery(q('src:c:email:Jane.Doe@Example.COM'), {
      identifiers: [
        { type: 'twitter', value: 'FooBar' },
        { type: 'member_id', value: 'AbC' },
      ],
      attributes: {},
    });
    expect(profile.identifiers).toEqual([
      { type: 'twitter', value: 'foobar' },
      { type: 'member_id', value: 'AbC' },
      email('jane.doe@example.com'),
    ]);
    expect(s.findByQuery(q('src:c:email:JANE.DOE@example.com'))?.id).toBe(profile.id);
    expect(s.findByQuery(q('src:c:twitter:FOOBAR'))?.id).toBe(profile.id);
    // Other types stay case-sensitive.
    expect(s.findByQuery(q('src:c:member_id:AbC'))?.id).toBe(profile.id);
    expect(s.findByQuery(q('src:c:member_id:abc'))).toBeUndefined();
  });

  it('derives the name when none is given, on create and on replace', () => {
    const { s } = store();
    const p = s.putByQuery(q('src:c:external_id:X1'), { identifiers: [], attributes: {} }).profile;
    expect(p.name).toBe('User X1');
    const r = s.putByQuery(q('src:c:external_id:X1'), {
      identifiers: [ext('X1'), { type: 'twitter', value: 'Tw' }, email('e@x.io')],
      attributes: {},
    }).profile;
    expect(r.name).toBe('e@x.io');
  });

  it("refuses the reserved source 'zendesk' on create", () => {
    const { s } = store();
    fails(
      () => s.putByQuery(q('zendesk:c:email:a@x.io'), { identifiers: [], attributes: {} }),
      400,
      /reserved/,
    );
    fails(
      () => s.putByQuery(q('Zendesk:c:email:a@x.io'), { identifiers: [], attributes: {} }),
      400,
      /reserved/,
    );
    expect(s.listProfiles()).toEqual([]);
    expect(s.listUsers()).toEqual([]);
  });

  it('limits source and type to 40 characters', () => {
    const { s } = store();
    const forty = 'a'.repeat(40);
    expect(
      s.putByQuery(q(`${forty}:${forty}:email:a@x.io`), { identifiers: [], attributes: {} }).created,
    ).toBe(true);
    fails(
      () => s.putByQuery(q(`${forty}b:t:email:b@x.io`), { identifiers: [], attributes: {} }),
      400,
      /source/,
    );
    fails(
      () => s.putByQuery(q(`s:${forty}b:email:b@x.io`), { identifiers: [], attributes: {} }),
      400,
      /type/,
    );
  });

  it('limits a profile to 20 identifiers, on create, replace and patch', () => {
    const { s } = store();
    const n = (count: number, from = 0) =>
      Array.from({ length: count }, (_, i) => ({ type: 'member', value: String(from + i) }));
    // 19 + the query's own = 20: fine.
    const p = s.putByQuery(q('s:t:external_id:1'), { identifiers: n(19), attributes: {} }).profile;
    expect(p.identifiers).toHaveLength(20);
    fails(() => s.putByQuery(q('s:t:external_id:2'), { identifiers: n(20, 100), attributes: {} }), 400, /20/);
    fails(() => s.replaceById(p.id, { identifiers: n(21), attributes: {} }), 400, /20/);
    fails(() => s.patchById(p.id, { identifiers: [email('one-more@x.io')] }), 400, /20/);
    // Re-sending identifiers it already has is not "adding": still 20.
    expect(s.patchById(p.id, { identifiers: n(5) }).identifiers).toHaveLength(20);
    expect(s.get(p.id)?.identifiers).toHaveLength(20);
  });

  it('refuses identifiers that already belong to another profile of the same source and type', () => {
    const { s } = store();
    s.putByQuery(q('s:t:external_id:1'), { identifiers: [email('a@x.io')], attributes: {} });
    fails(
      () => s.putByQuery(q('s:t:external_id:2'), { identifiers: [email('A@x.io')], attributes: {} }),
      400,
      /another profile/,
    );
    expect(s.findByQuery(q('s:t:external_id:2'))).toBeUndefined();
  });

  it('PUT by id replaces, and is 404 for an unknown id', () => {
    const { s } = store();
    const p = s.putByQuery(q('s:t:external_id:1'), { identifiers: [], attributes: { a: 1 } }).profile;
    expect(s.replaceById(p.id, { identifiers: [ext('1')], attributes: { b: 2 } }).attributes).toEqual({
      b: 2,
    });
    fails(
      () => s.replaceById('01ARZ3NDEKTSV4RRFFQ69G5FAV', { identifiers: [ext('1')], attributes: {} }),
      404,
    );
    fails(() => s.replaceById(p.id, { identifiers: [], attributes: {} }), 400, /at least one/);
  });
});

describe('SunshineStore: PATCH (001)', () => {
  function seeded() {
    const t = store();
    const p = t.s.putByQuery(q('coolbikes:rider:email:jdoe@example.com'), {
      name: 'sunshine_user',
      identifiers: [email('jdoe@example.com')],
      attributes: { favorite_color: 'red', saddle_height: '85cm' },
    }).profile;
    return { ...t, p };
  }

  it("merges attributes and replaces the name (001's example)", () => {
    const { s, p, tick } = seeded();
    tick();
    const after = s.patchByQuery(q('coolbikes:rider:email:jdoe@example.com'), {
      name: 'Jane Doe',
      attributes: { saddle_height: '87cm' },
    });
    expect(after).toEqual({
      ...p,
      name: 'Jane Doe',
      attributes: { favorite_color: 'red', saddle_height: '87cm' },
      updated_at: '2026-01-01T00:00:01.000Z',
    });
  });

  it('keeps the name when none is given', () => {
    const { s, p } = seeded();
    expect(s.patchById(p.id, { attributes: { x: '1' } }).name).toBe('sunshine_user');
  });

  it('adds a changed email as a second identifier, never changing or removing one', () => {
    const { s, p } = seeded();
    const after = s.patchById(p.id, { identifiers: [email('Jane.New@Example.com')] });
    expect(after.identifiers).toEqual([email('jdoe@example.com'), email('jane.new@example.com')]);
    // Sending fewer identifiers removes nothing.
    expect(s.patchById(p.id, { identifiers: [] }).identifiers).toHaveLength(2);
    expect(s.findByQuery(q('coolbikes:rider:email:jdoe@example.com'))?.id).toBe(p.id);
    expect(s.findByQuery(q('coolbikes:rider:email:jane.new@example.com'))?.id).toBe(p.id);
    // "a new identity is added to the Zendesk user record too"
    expect(s.getUser(p.user_id)?.identities).toEqual([
      email('jdoe@example.com'),
      email('jane.new@example.com'),
    ]);
  });

  it('is 404 when the profile is absent', () => {
    const { s } = seeded();
    fails(() => s.patchById('nope', { attributes: {} }), 404);
    fails(() => s.patchByQuery(q('coolbikes:rider:email:other@example.com'), { attributes: {} }), 404);
    fails(() => s.patchByQuery(q('other:rider:email:jdoe@example.com'), { attributes: {} }), 404);
  });
});

describe('SunshineStore: Zendesk users (003 "Standard identifiers")', () => {
  it('creates an anonymous user when no identity matches, and adds the standard identifiers to it', () => {
    const { s } = store();
    const p = s.putByQuery(q('s:t:external_id:X'), {
      identifiers: [
        email('A@x.io'),
        { type: 'phone_number', value: '+61 2' },
        { type: 'twitter', value: 'TW' },
        { type: 'facebook', value: 'fb' },
        { type: 'sdk', value: 'sd' },
        { type: 'member', value: 'm' },
      ],
      attributes: {},
    }).profile;
    const user = s.getUser(p.user_id)!;
    expect(user.anonymous).toBe(true);
    expect(user.external_id).toBe('X');
    expect(user.identities).toEqual([
      email('a@x.io'),
      { type: 'phone_number', value: '+61 2' },
      { type: 'twitter', value: 'tw' },
      { type: 'facebook', value: 'fb' },
      { type: 'sdk', value: 'sd' },
    ]);
  });

  it('links a new profile to the user holding a matching identity or external_id', () => {
    const { s } = store();
    const byEmail = s.addUser({ name: 'Jane', identities: [email('Jane@x.io')] });
    const byGoogle = s.addUser({ name: 'G', identities: [{ type: 'google', value: 'g@x.io' }] });
    const byExt = s.addUser({ name: 'E', external_id: 'E-1' });
    const byPhone = s.addUser({ identities: [{ type: 'phone_number', value: '+1555' }] });
    const put = (query: string, identifiers = [] as { type: string; value: string }[]) =>
      s.putByQuery(q(query), { identifiers, attributes: {} }).profile.user_id;
    expect(put('s:t:email:JANE@x.io')).toBe(byEmail.id);
    // "If a Zendesk user identity has been previously created with a "google" type property, it will be
    // internally matched with an identifier type of "email"."
    expect(put('s:t:email:g@x.io')).toBe(byGoogle.id);
    expect(put('s:t:member:1', [ext('E-1')])).toBe(byExt.id);
    expect(put('s:t:member:2', [{ type: 'phone_number', value: '+1555' }])).toBe(byPhone.id);
    // A non-standard identifier never links.
    expect(put('s:t:member:3', [{ type: 'member', value: 'E-1' }])).not.toBe(byExt.id);
    expect(s.profilesOfUser(byEmail.id)).toHaveLength(1);
    expect(s.getUser(byEmail.id)?.anonymous).toBe(false);
  });

  it('fails when the identifiers belong to several users', () => {
    const { s } = store();
    s.addUser({ identities: [email('a@x.io')] });
    s.addUser({ identities: [email('b@x.io')] });
    const before = s.listUsers().length;
    fails(
      () => s.putByQuery(q('s:t:email:a@x.io'), { identifiers: [email('b@x.io')], attributes: {} }),
      400,
      /more than one user/,
    );
    const p = s.putByQuery(q('s:t:email:a@x.io'), { identifiers: [], attributes: {} }).profile;
    fails(() => s.patchById(p.id, { identifiers: [email('b@x.io')] }), 400, /more than one user/);
    fails(
      () => s.replaceById(p.id, { identifiers: [email('a@x.io'), email('b@x.io')], attributes: {} }),
      400,
    );
    expect(s.listUsers()).toHaveLength(before);
    expect(s.get(p.id)?.identifiers).toEqual([email('a@x.io')]);
  });

  it('PUT under /users/{user_id} links to that user, 404 for an unknown one, 400 for another user', () => {
    const { s } = store();
    const jane = s.addUser({ identities: [email('jane@x.io')] });
    const bob = s.addUser({ identities: [email('bob@x.io')] });
    const p = s.putByQuery(q('s:t:member:1'), { identifiers: [], attributes: {} }, jane.id);
    expect(p.profile.user_id).toBe(jane.id);
    expect(s.getUser(jane.id)?.identities).toEqual([email('jane@x.io')]);
    fails(() => s.putByQuery(q('s:t:member:2'), { identifiers: [], attributes: {} }, '999'), 404);
    fails(
      () => s.putByQuery(q('s:t:member:3'), { identifiers: [email('bob@x.io')], attributes: {} }, jane.id),
      400,
    );
    fails(
      () => s.putByQuery(q('s:t:member:1'), { identifiers: [], attributes: {} }, bob.id),
      400,
      /another user/,
    );
    const again = s.putByQuery(
      q('s:t:member:1'),
      { identifiers: [{ type: 'member', value: '1' }], attributes: { a: 1 } },
      jane.id,
    );
    expect(again.created).toBe(false);
    expect(again.profile.id).toBe(p.profile.id);
  });

  it('lists the profiles of a user; 404 for an unknown user', () => {
    const { s } = store();
    const a = s.putByQuery(q('s:one:email:a@x.io'), { identifiers: [], attributes: {} }).profile;
    const b = s.putByQuery(q('s:two:email:a@x.io'), { identifiers: [], attributes: {} }).profile;
    expect(s.profilesOfUser(a.user_id).map((p) => p.id)).toEqual([a.id, b.id]);
    fails(() => s.profilesOfUser('123'), 404);
  });

  it('fails when creating a profile would exceed the maximum per user', () => {
    const { s } = store({ maxProfilesPerUser: 2 });
    s.putByQuery(q('s:one:email:a@x.io'), { identifiers: [], attributes: {} });
    s.putByQuery(q('s:two:email:a@x.io'), { identifiers: [], attributes: {} });
    fails(() => s.putByQuery(q('s:three:email:a@x.io'), { identifiers: [], attributes: {} }), 400, /maximum/);
  });
});

describe('SunshineStore: delete, raw edits, reset', () => {
  it('deletes a profile; the user stays', () => {
    const { s } = store();
    const p = s.putByQuery(q('s:t:email:a@x.io'), { identifiers: [], attributes: {} }).profile;
    expect(s.delete(p.id)).toBe(true);
    expect(s.delete(p.id)).toBe(false);
    expect(s.get(p.id)).toBeUndefined();
    expect(s.findByQuery(q('s:t:email:a@x.io'))).toBeUndefined();
    expect(s.profilesOfUser(p.user_id)).toEqual([]);
    // The user keeps its identity, so a new profile links to it again.
    expect(s.putByQuery(q('s:t:email:a@x.io'), { identifiers: [], attributes: {} }).profile.user_id).toBe(
      p.user_id,
    );
  });

  it('raw edits add foreign identifiers and attributes without rules', () => {
    const { s } = store();
    const p = s.putByQuery(q('s:t:email:a@x.io'), { identifiers: [], attributes: { a: 1 } }).profile;
    const edited = s.rawEdit(p.id, {
      attributes: { foreign: 'x', a: null },
      identifiers: [{ type: 'crm', value: 'c1' }],
    });
    expect(edited?.attributes).toEqual({ foreign: 'x' });
    expect(s.findByQuery(q('s:t:crm:c1'))?.id).toBe(p.id);
    expect(s.rawEdit('nope', {})).toBeUndefined();
  });

  it('returns copies: changing an answer does not change the store', () => {
    const { s } = store();
    const p = s.putByQuery(q('s:t:email:a@x.io'), { identifiers: [], attributes: {} }).profile;
    p.identifiers.push(email('evil@x.io'));
    p.name = 'changed';
    expect(s.get(p.id)?.identifiers).toEqual([email('a@x.io')]);
    expect(s.get(p.id)?.name).toBe('a@x.io');
  });

  it('reset forgets everything', () => {
    const { s } = store();
    s.putByQuery(q('s:t:email:a@x.io'), { identifiers: [], attributes: {} });
    s.reset();
    expect(s.listProfiles()).toEqual([]);
    expect(s.listUsers()).toEqual([]);
    expect(s.findByQuery(q('s:t:email:a@x.io'))).toBeUndefined();
  });
});
