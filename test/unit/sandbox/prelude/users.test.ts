import { describe, expect, it } from 'vitest';
import {
  checkBatchLookup,
  checkCreateUser,
  checkPutExternalId,
  inUnknownShare,
  isUsrId,
  PreludeDirectory,
  PreludeState,
  seededKind,
  usrId,
} from '../../../../src/sandbox/prelude/index.js';
import { syntheticUsers } from '../../../../src/sandbox/source/synthetic-users.js';

const dirOptions = { seed: 3, appId: 'app_sandbox', unknownShare: 0.1, emailOnlyShare: 0.05, now: () => 0 };

describe('usr_ ids (prelude-users-api.md)', () => {
  it('are usr_ + 26 lowercase Crockford base32 characters, the same for the same seed and key', () => {
    const id = usrId(1, 'user-000001', Date.UTC(2025, 2, 27));
    expect(id).toMatch(/^usr_[0-9a-hjkmnp-tv-z]{26}$/);
    expect(isUsrId(id)).toBe(true);
    expect(usrId(1, 'user-000001', Date.UTC(2025, 2, 27))).toBe(id);
    expect(usrId(2, 'user-000001', Date.UTC(2025, 2, 27))).not.toBe(id);
    expect(isUsrId('usr_01jqebhswje1ka1z7ahr9rfsgt')).toBe(true); // the facts file's example
    for (const bad of [
      'user-000001',
      'usr_',
      'usr_01JQEBHSWJE1KA1Z7AHR9RFSGT',
      'usr_01jqebhswje1ka1z7ahr9rfsg',
    ]) {
      expect(isUsrId(bad), bad).toBe(false);
    }
  });
});

describe('seeded Prelude users', () => {
  const source = syntheticUsers(3, 4000);

  it('leave out the legacy unknown share (~10%), know ~5% by email only, the rest by external_id', () => {
    const kinds = { unknown: 0, email_only: 0, external_id: 0 };
    for (const u of source) {
      const kind = seededKind(3, u.id, 0.1, 0.05, !!u.email);
      kinds[kind]++;
      // The same ids as the legacy PATCH rule refuses.
      if (inUnknownShare(3, u.id, 0.1)) expect(kind).toBe('unknown');
    }
    expect(kinds.unknown / source.length).toBeGreaterThan(0.08);
    expect(kinds.unknown / source.length).toBeLessThan(0.13);
    expect(kinds.email_only / source.length).toBeGreaterThan(0.03);
    expect(kinds.email_only / source.length).toBeLessThan(0.07);
  });

  it('index users by usr id, external_id and (lowercased) email; unique ids; deterministic', () => {
    const a = new PreludeDirectory(dirOptions, source);
    const b = new PreludeDirectory(dirOptions, source);
    expect(b.list()).toEqual(a.list());
    expect(new Set(a.list().map((u) => u.id)).size).toBe(a.size);
    const withEmail = source.find((u) => u.email && seededKind(3, u.id, 0.1, 0.05, true) === 'external_id')!;
    const user = a.byExternalId(withEmail.id)!;
    expect(user.identifiers).toEqual([{ type: 'email_address', value: withEmail.email!.toLowerCase() }]);
    expect(a.byIdentifierValue('email_address', withEmail.email!.toUpperCase())).toBe(user);
    expect(a.get(user.id)).toBe(user);
    const noEmail = source.find((u) => !u.email && seededKind(3, u.id, 0.1, 0.05, false) === 'external_id')!;
    expect(a.byExternalId(noEmail.id)!.identifiers[0]!.type).toBe('phone_number');
  });

  it('create, setExternalId, patchProfile and remove keep the indexes right', () => {
    const d = new PreludeDirectory(dirOptions, []);
    const u = d.create({ identifiers: [{ type: 'email_address', value: 'A@B.io' }], externalId: 'e1' });
    expect(d.conflict([{ type: 'email_address', value: 'a@b.io' }], undefined)).toMatch(/another user/);
    expect(d.conflict([], 'e1')).toMatch(/external_id e1/);
    expect(d.conflict([], 'e1', u.id)).toBeUndefined();
    d.setExternalId(u.id, 'e2');
    expect(d.byExternalId('e1')).toBeUndefined();
    expect(d.byExternalId('e2')).toBe(u);
    d.patchProfile(u.id, { a: 'b' });
    d.patchProfile(u.id, { c: '' });
    expect(d.get(u.id)!.profile).toEqual({ a: 'b', c: '' });
    expect(d.remove(u.id)).toBe(true);
    expect(d.byExternalId('e2')).toBeUndefined();
    expect(d.byIdentifierValue('email_address', 'a@b.io')).toBeUndefined();
  });
});

describe('PATCH targets by mode', () => {
  const source = syntheticUsers(3, 500);
  const make = (ids: 'usr' | 'source') => new PreludeState({ seed: 3, population: () => source, ids });

  it('usr: only usr ids; source: usr ids and the ids the legacy rule knows, with the linked user', () => {
    const usr = make('usr');
    const legacy = make('source');
    const user = usr
      .directory('app_sandbox')!
      .list()
      .find((u) => u.external_id !== undefined)!;
    expect(usr.resolvePatchTarget('app_sandbox', user.external_id!)).toBeUndefined();
    expect(usr.resolvePatchTarget('app_sandbox', user.id)).toEqual({ usr: user.id });
    expect(legacy.resolvePatchTarget('app_sandbox', user.external_id!)).toEqual({
      usr: user.id,
      legacy: user.external_id,
    });
    expect(legacy.resolvePatchTarget('app_sandbox', user.id)).toEqual({ usr: user.id });
    expect(legacy.directory('app_sandbox')!.list()).toEqual(usr.directory('app_sandbox')!.list());
  });
});

describe('request bodies of the users endpoints', () => {
  const list = (n: number) => Array.from({ length: n }, (_, i) => `id-${i}`);

  it('batch_lookup: one list at least, each at most 100 strings', () => {
    expect(checkBatchLookup({ external_ids: list(100) })).toMatchObject({ ok: true });
    expect(checkBatchLookup({ emails: list(100), external_ids: [] })).toMatchObject({ ok: true });
    expect(checkBatchLookup({ external_ids: list(100), emails: list(100) })).toMatchObject({ ok: true });
    for (const body of [
      { external_ids: list(101) },
      { emails: list(101) },
      {},
      { external_ids: [], emails: [] },
      { external_ids: null },
      { external_ids: [1] },
      { emails: 'x' },
      null,
      [],
    ]) {
      expect(checkBatchLookup(body), JSON.stringify(body)).toMatchObject({
        ok: false,
        code: 'invalid_request',
      });
    }
    expect(checkBatchLookup({ external_ids: list(101) })).toMatchObject({ message: /101 entries/ });
  });

  it('create: identifiers required; profile of strings without reserved keys; external_id up to 128', () => {
    const id = [{ type: 'phone_number', value: '+33600000000' }];
    expect(checkCreateUser({ identifiers: id })).toMatchObject({ ok: true, profile: {} });
    expect(checkCreateUser({ identifiers: id, external_id: 'x'.repeat(128) })).toMatchObject({ ok: true });
    expect(checkCreateUser({ identifiers: id, external_id: 'x'.repeat(129) })).toMatchObject({ ok: false });
    expect(checkCreateUser({ identifiers: id, profile: { sub: 'x' } })).toMatchObject({
      ok: false,
      code: 'reserved_profile_key',
    });
    for (const body of [{}, { identifiers: [] }, { identifiers: [{ type: 'email', value: 'a' }] }]) {
      expect(checkCreateUser(body)).toMatchObject({ ok: false, code: 'invalid_request' });
    }
  });

  it('PUT external_id: a string of 1 to 128 characters', () => {
    expect(checkPutExternalId({ external_id: 'a' })).toEqual({ ok: true, externalId: 'a' });
    for (const body of [{}, { external_id: '' }, { external_id: 1 }, { external_id: 'x'.repeat(129) }]) {
      expect(checkPutExternalId(body)).toMatchObject({ ok: false, code: 'invalid_request' });
    }
  });
});
