import { afterEach, describe, expect, it } from 'vitest';
import { type Sandbox, startSandbox } from '../../../src/sandbox/index.js';
import { inUnknownShare } from '../../../src/sandbox/prelude/index.js';
import { syntheticUsers } from '../../../src/sandbox/source/synthetic-users.js';
import { validateComponent, validateResponse } from '../../unit/sandbox/prelude/openapi.js';
import { type Answer, call } from './http.js';

// Prelude's own users (issue 10 item 6), over real HTTP on loopback, written from
// ../shared/seeds/prelude-users-api.md; error bodies checked against prelude-openapi.yaml.

const USR = /^usr_[0-9a-hjkmnp-tv-z]{26}$/;
const USERS = 300;
let sandbox: Sandbox | undefined;

afterEach(async () => {
  await sandbox?.close();
  sandbox = undefined;
});

async function start(options: Parameters<typeof startSandbox>[0] = {}): Promise<Sandbox> {
  await sandbox?.close();
  sandbox = await startSandbox({ port: 0, users: USERS, seed: 7, rateLimit: null, ...options });
  return sandbox;
}

const api = (sb: Sandbox, method: string, path: string, json?: unknown): Promise<Answer> =>
  call(sb.urls.prelude, method, `/v2/session/apps/${sb.env.PRELUDE_APP_ID}${path}`, {
    headers: { authorization: `Bearer ${sb.env.PRELUDE_API_KEY}` },
    ...(json === undefined ? {} : { json }),
  });
const inspect = (sb: Sandbox, method: string, path: string, json?: unknown): Promise<Answer> =>
  call(sb.urls.prelude, method, `/__sandbox${path}`, json === undefined ? {} : { json });

// biome-ignore lint/suspicious/noExplicitAny: answers are read field by field
type Any = any;

/** `{code, status, message}` and, where the OpenAPI has the component, valid against it. */
function expectError(a: Answer, status: number, code: string, component?: string): void {
  expect(a.status, a.text).toBe(status);
  const body = a.body as Any;
  expect(Object.keys(body).sort()).toEqual(['code', 'message', 'status']);
  expect(body.code).toBe(code);
  if (component) {
    const v = validateComponent(component);
    expect(v(body), JSON.stringify(v.errors)).toBe(true);
  }
}

/** The Prelude users of the sandbox, from the inspection API. */
async function preludeUsers(sb: Sandbox): Promise<Any[]> {
  return ((await inspect(sb, 'GET', '/users')).body as Any).users;
}

const source = syntheticUsers(7, USERS);

describe('Prelude simulator: its own users', () => {
  it('seeds usr_ ids for about 90% of source users, most with external_id = the source id, some by email only', async () => {
    const sb = await start();
    const users = await preludeUsers(sb);
    for (const u of users) expect(u.id).toMatch(USR);
    expect(new Set(users.map((u) => u.id)).size).toBe(users.length);
    const withExternal = users.filter((u) => u.external_id !== undefined);
    const emailOnly = users.filter((u) => u.external_id === undefined);
    expect(users.length).toBeGreaterThan(USERS * 0.8);
    expect(users.length).toBeLessThan(USERS * 0.97);
    expect(emailOnly.length).toBeGreaterThan(0);
    expect(emailOnly.length).toBeLessThan(USERS * 0.12);
    const ids = new Set(source.map((s) => s.id));
    for (const u of withExternal) expect(ids.has(u.external_id)).toBe(true);
    // Email-only users are found by the source user's email, lowercased.
    const emails = new Set(source.map((s) => s.email?.toLowerCase()));
    for (const u of emailOnly) expect(emails.has(u.identifiers[0].value)).toBe(true);
  });

  it('is deterministic from the seed: same users and ids for the same seed, others for another', async () => {
    const a = await preludeUsers(await start());
    const b = await preludeUsers(await start());
    expect(b).toEqual(a);
    const c = await preludeUsers(await start({ seed: 8 }));
    expect(c.map((u) => u.id)).not.toEqual(a.map((u) => u.id));
    // The same users in both id modes, so switching the default changes nothing else.
    const d = await preludeUsers(await start({ preludeIds: 'usr' }));
    expect(d).toEqual(a);
  });

  it('batch_lookup finds users by external_id and by email; users not found are absent', async () => {
    const sb = await start();
    const users = await preludeUsers(sb);
    const byExternal = users.filter((u) => u.external_id !== undefined);
    const emailOnly = users.filter((u) => u.external_id === undefined);
    const known = new Set(byExternal.map((u) => u.external_id));
    const unknownIds = source.map((s) => s.id).filter((id) => !known.has(id));
    expect(unknownIds.length).toBeGreaterThan(0);

    const asked = [...byExternal.slice(0, 5).map((u) => u.external_id), ...unknownIds.slice(0, 3)];
    const emailsAsked = [emailOnly[0].identifiers[0].value.toUpperCase(), 'nobody@example.com'];
    const a = await api(sb, 'POST', '/users/batch_lookup', { external_ids: asked, emails: emailsAsked });
    expect(a.status, a.text).toBe(200);
    const found = (a.body as Any).users as Any[];
    expect(found.map((u) => u.id).sort()).toEqual(
      [...byExternal.slice(0, 5).map((u) => u.id), emailOnly[0].id].sort(),
    );
    for (const u of found) {
      // The answer's shape per the facts file.
      expect(Object.keys(u).sort()).toEqual(
        [
          'created_at',
          'id',
          'identifiers',
          'profile',
          'scopes',
          'status',
          'updated_at',
          ...(u.external_id === undefined ? [] : ['external_id']),
        ].sort(),
      );
      expect(u.identifiers.every((i: Any) => Object.keys(i).join() === 'value')).toBe(true);
    }
    // Only emails, only external ids, and nothing found at all.
    const onlyEmails = await api(sb, 'POST', '/users/batch_lookup', { emails: ['nobody@example.com'] });
    expect(onlyEmails.body).toEqual({ users: [] });
    const only = await api(sb, 'POST', '/users/batch_lookup', { external_ids: [byExternal[0].external_id] });
    expect((only.body as Any).users.map((u: Any) => u.id)).toEqual([byExternal[0].id]);
  });

  it('batch_lookup answers 400 invalid_request beyond 100 entries in a list or with no entry at all', async () => {
    const sb = await start();
    const hundred = Array.from({ length: 100 }, (_, i) => `x-${i}`);
    expect((await api(sb, 'POST', '/users/batch_lookup', { external_ids: hundred })).status).toBe(200);
    expect((await api(sb, 'POST', '/users/batch_lookup', { emails: hundred })).status).toBe(200);
    for (const body of [
      { external_ids: [...hundred, 'x-100'] },
      { emails: [...hundred, 'a@b.c'] },
      {},
      { external_ids: [], emails: [] },
      { external_ids: [1] },
      { emails: 'a@b.c' },
      [],
    ]) {
      expectError(
        await api(sb, 'POST', '/users/batch_lookup', body),
        400,
        'invalid_request',
        'InvalidRequestError',
      );
    }
  });

  it('get user shows the profile written by a PATCH to its usr id; 404 user_not_found otherwise', async () => {
    const sb = await start();
    const [u] = await preludeUsers(sb);
    const before = await api(sb, 'GET', `/users/${u.id}`);
    expect(before.status).toBe(200);
    expect((before.body as Any).user).toMatchObject({ id: u.id, status: 'active', profile: {} });
    expect((before.body as Any).user.identifiers[0]).toHaveProperty('type');
    const patch = await api(sb, 'PATCH', `/users/${u.id}/profile`, { profile: { first_name: 'Jane' } });
    expect(patch.status).toBe(204);
    await api(sb, 'PATCH', `/users/${u.id}/profile`, { profile: { last_name: 'Smith' } });
    const after = await api(sb, 'GET', `/users/${u.id}`);
    expect((after.body as Any).user.profile).toEqual({ first_name: 'Jane', last_name: 'Smith' });
    const missing = await api(sb, 'GET', '/users/usr_00000000000000000000000000');
    expectError(missing, 404, 'user_not_found', 'UserNotFoundError');
    expect(validateResponse(404)(missing.body)).toBe(true);
    const noApp = await call(sb.urls.prelude, 'GET', `/v2/session/apps/nope/users/${u.id}`, {
      headers: { authorization: `Bearer ${sb.env.PRELUDE_API_KEY}` },
    });
    expectError(noApp, 404, 'app_not_found', 'AppNotFoundError');
  });

  it('lists users by email_address or phone_number identifier', async () => {
    const sb = await start();
    const users = await preludeUsers(sb);
    const withEmail = users.find((u) => u.identifiers[0].value.includes('@'));
    const a = await api(
      sb,
      'GET',
      `/users?identifier_type=email_address&identifier_value=${encodeURIComponent(withEmail.identifiers[0].value)}`,
    );
    expect(a.status).toBe(200);
    expect((a.body as Any).users.map((u: Any) => u.id)).toEqual([withEmail.id]);
    expect((a.body as Any).users[0].identifiers[0]).toEqual({
      type: 'email_address',
      value: withEmail.identifiers[0].value,
    });
    const none = await api(sb, 'GET', '/users?identifier_type=email_address&identifier_value=no%40x.io');
    expect(none.body).toEqual({ users: [] });
    expectError(
      await api(sb, 'GET', '/users?identifier_type=username&identifier_value=x'),
      400,
      'invalid_request',
      'InvalidRequestError',
    );
  });

  it('create user: 201 with a new usr id, findable by external_id; identifiers required; conflicts refused', async () => {
    const sb = await start();
    const created = await api(sb, 'POST', '/users', {
      identifiers: [{ type: 'email_address', value: 'New.User@Example.com' }],
      external_id: 'new-user-1',
      profile: { first_name: 'New' },
    });
    expect(created.status, created.text).toBe(201);
    expect(Object.keys(created.body as Any)).toEqual(['id']);
    const id = (created.body as Any).id;
    expect(id).toMatch(USR);
    const found = await api(sb, 'POST', '/users/batch_lookup', { external_ids: ['new-user-1'] });
    expect((found.body as Any).users).toMatchObject([
      { id, external_id: 'new-user-1', profile: { first_name: 'New' } },
    ]);
    const byEmail = await api(sb, 'POST', '/users/batch_lookup', { emails: ['new.user@example.com'] });
    expect((byEmail.body as Any).users.map((u: Any) => u.id)).toEqual([id]);

    for (const body of [
      {},
      { identifiers: [] },
      { identifiers: [{ type: 'username', value: 'x' }] },
      { identifiers: [{ type: 'email_address', value: 'a@b.c' }], external_id: 'x'.repeat(129) },
      { identifiers: [{ type: 'email_address', value: 'a@b.c' }], profile: { a: 1 } },
    ]) {
      expectError(await api(sb, 'POST', '/users', body), 400, 'invalid_request', 'InvalidRequestError');
    }
    expectError(
      await api(sb, 'POST', '/users', {
        identifiers: [{ type: 'phone_number', value: '+33612345678' }],
        profile: { sub: 'x' },
      }),
      400,
      'reserved_profile_key',
      'ReservedProfileKeyError',
    );
    const dup = await api(sb, 'POST', '/users', {
      identifiers: [{ type: 'phone_number', value: '+33600000001' }],
      external_id: 'new-user-1',
    });
    expect(dup.status).toBe(409);
  });

  it("PUT external_id sets (or moves) a user's external_id: 204, then found by it", async () => {
    const sb = await start();
    const emailOnly = (await preludeUsers(sb)).find((u) => u.external_id === undefined);
    const put = await api(sb, 'PUT', `/users/${emailOnly.id}/external_id`, { external_id: 'linked-later' });
    expect(put.status, put.text).toBe(204);
    expect(put.text).toBe('');
    const found = await api(sb, 'POST', '/users/batch_lookup', { external_ids: ['linked-later'] });
    expect((found.body as Any).users.map((u: Any) => u.id)).toEqual([emailOnly.id]);
    expect(((await api(sb, 'GET', `/users/${emailOnly.id}`)).body as Any).user.external_id).toBe(
      'linked-later',
    );
    expectError(
      await api(sb, 'PUT', '/users/usr_00000000000000000000000000/external_id', { external_id: 'x' }),
      404,
      'user_not_found',
      'UserNotFoundError',
    );
    expectError(
      await api(sb, 'PUT', `/users/${emailOnly.id}/external_id`, { external_id: '' }),
      400,
      'invalid_request',
      'InvalidRequestError',
    );
  });

  it('/__sandbox/ adds a Prelude user later (by external_id, with the source email) and shows it by usr id and external_id', async () => {
    const sb = await start({ preludeIds: 'usr' });
    const users = await preludeUsers(sb);
    const known = new Set(users.map((u) => u.external_id));
    const emails = new Set(users.map((u) => u.identifiers[0].value));
    const later = source.find((s) => !known.has(s.id) && s.email && !emails.has(s.email.toLowerCase()))!;
    const before = await api(sb, 'POST', '/users/batch_lookup', { external_ids: [later.id] });
    expect(before.body).toEqual({ users: [] });

    const added = await inspect(sb, 'POST', '/users', { external_id: later.id });
    expect(added.status, added.text).toBe(201);
    const usr = (added.body as Any).id;
    expect(usr).toMatch(USR);
    expect((added.body as Any).identifiers).toEqual([{ value: later.email!.toLowerCase() }]);
    const after = await api(sb, 'POST', '/users/batch_lookup', { external_ids: [later.id] });
    expect((after.body as Any).users.map((u: Any) => u.id)).toEqual([usr]);
    // Adding it again changes nothing.
    const again = await inspect(sb, 'POST', '/users', { external_id: later.id });
    expect(again.status).toBe(200);
    expect((again.body as Any).id).toBe(usr);

    expect((await api(sb, 'PATCH', `/users/${usr}/profile`, { profile: { a: 'b' } })).status).toBe(204);
    const byUsr = (await inspect(sb, 'GET', `/users/${usr}`)).body as Any;
    expect(byUsr).toMatchObject({
      known: true,
      user: { id: usr, external_id: later.id, profile: { a: 'b' } },
    });
    const byExternal = (await inspect(sb, 'GET', `/users/${encodeURIComponent(later.id)}`)).body as Any;
    expect(byExternal.user.id).toBe(usr);
    const listed = (await inspect(sb, 'GET', `/users?external_id=${encodeURIComponent(later.id)}`))
      .body as Any;
    expect(listed.users.map((u: Any) => u.id)).toEqual([usr]);
    expect((await inspect(sb, 'GET', `/profiles/${usr}`)).body).toMatchObject({ profile: { a: 'b' } });

    // Deleted in Prelude: the PATCH to its usr id is user_not_found.
    expect((await inspect(sb, 'DELETE', `/users/${usr}`)).status).toBe(204);
    expectError(
      await api(sb, 'PATCH', `/users/${usr}/profile`, { profile: { a: 'c' } }),
      404,
      'user_not_found',
      'UserNotFoundError',
    );
  });

  it('usr mode refuses source ids (404 user_not_found); source mode still accepts them, writing the same user', async () => {
    const strict = await start({ preludeIds: 'usr' });
    const user = (await preludeUsers(strict)).find((u) => u.external_id !== undefined);
    const patchBy = (sb: Sandbox, id: string, value: string) =>
      api(sb, 'PATCH', `/users/${encodeURIComponent(id)}/profile`, { profile: { first_name: value } });
    const refused = await patchBy(strict, user.external_id, 'Jane');
    expectError(refused, 404, 'user_not_found', 'UserNotFoundError');
    expect(validateResponse(404)(refused.body)).toBe(true);
    expect((await patchBy(strict, user.id, 'Jane')).status).toBe(204);

    const legacy = await start({ preludeIds: 'source' });
    const same = (await preludeUsers(legacy)).find((u) => u.id === user.id);
    expect(same).toBeDefined();
    expect((await patchBy(legacy, user.external_id, 'Ann')).status).toBe(204);
    // The legacy PATCH reaches the Prelude user whose external_id it is.
    expect(((await api(legacy, 'GET', `/users/${user.id}`)).body as Any).user.profile).toEqual({
      first_name: 'Ann',
    });
    expect((await patchBy(legacy, user.id, 'Bea')).status).toBe(204);
    // A source id in the unknown share is unknown in both modes, and absent from the Prelude users.
    const unknown = source.find((s) => inUnknownShare(7, s.id, 0.1))!;
    expect((await preludeUsers(legacy)).some((u) => u.external_id === unknown.id)).toBe(false);
    expectError(await patchBy(legacy, unknown.id, 'X'), 404, 'user_not_found', 'UserNotFoundError');
  });
});
