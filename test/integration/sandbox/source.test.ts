import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Sandbox, startSandbox } from '../../../src/sandbox/index.js';
import { type Answer, basic, call } from './http.js';

interface User {
  id: string;
  firstName?: string | null;
  lastName?: string | null;
  email?: string | null;
}

let sb: Sandbox;
let auth: Record<string, string>;
const USERS = 300;

const get = (path: string, headers = auth) => call(sb.urls.source, 'GET', path, { headers });
const put = (id: string, json: unknown, headers = auth) =>
  call(sb.urls.source, 'PUT', `/user/${camundaSegment(id)}/profile`, { headers, json });
/** vendor-facts.md: Camunda decodes `%2F` before routing, so a `/` in an id goes as `%252F`. */
const camundaSegment = (id: string) => encodeURIComponent(id).replace(/%2F/g, '%252F');
const inspect = (method: string, path: string, json?: unknown) =>
  call(sb.urls.source, method, `/__sandbox/${path}`, json === undefined ? {} : { json });
const users = (a: Answer) => a.body as User[];
const invalidRequest = (message: string | RegExp) => ({
  type: 'InvalidRequestException',
  message: typeof message === 'string' ? message : expect.stringMatching(message),
});

beforeAll(async () => {
  sb = await startSandbox({ port: 0, users: USERS, seed: 1, rateLimit: null });
  auth = basic(sb.env.SOURCE_USERNAME!, sb.env.SOURCE_PASSWORD!);
});
afterAll(() => sb.close());
beforeEach(async () => {
  expect((await inspect('POST', 'reset')).status).toBe(204);
});

describe('source simulator: authentication', () => {
  it('answers 401 with a JSON type/message body and a Basic challenge without valid credentials', async () => {
    for (const headers of [
      {},
      basic('profile-sync', 'wrong'),
      basic('someone', sb.env.SOURCE_PASSWORD!),
      { authorization: 'Bearer nope' },
    ]) {
      const r = await get('/user/count', headers);
      expect(r.status).toBe(401);
      expect(r.headers['www-authenticate']).toBe('Basic realm="default"');
      expect(r.body).toEqual({ type: 'NotAuthorizedException', message: expect.any(String) });
    }
  });

  it('accepts basic auth and the bearer token', async () => {
    expect((await get('/user/count')).status).toBe(200);
    expect((await get('/user/count', { authorization: 'Bearer sandbox-source-token' })).status).toBe(200);
  });
});

describe('source simulator: GET /user and GET /user/count', () => {
  it('lists every user as {id, firstName, lastName, email} in id order, unlimited by default', async () => {
    const r = await get('/user');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/json');
    const list = users(r);
    expect(list).toHaveLength(USERS);
    const ids = list.map((u) => u.id);
    expect(ids).toEqual([...ids].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    // Camunda answers all four keys, a missing value null, never an absent key (vendor-facts.md).
    for (const u of list) expect(Object.keys(u).sort()).toEqual(['email', 'firstName', 'id', 'lastName']);
    expect((await get('/user/count')).body).toEqual({ count: USERS });
  });

  it('holds awkward data: encoded ids, null fields, mixed-case emails, non-ASCII names', async () => {
    const list = users(await get('/user'));
    for (const ch of [' ', '/', ':', '%', '+']) expect(list.some((u) => u.id.includes(ch))).toBe(true);
    expect(list.some((u) => /[^\x20-\x7e]/.test(u.id))).toBe(true);
    expect(list.some((u) => u.lastName === null)).toBe(true);
    expect(list.every((u) => 'lastName' in u && 'email' in u)).toBe(true);
    expect(list.some((u) => u.email === null)).toBe(true);
    expect(list.some((u) => typeof u.email === 'string' && u.email !== u.email.toLowerCase())).toBe(true);
    expect(list.some((u) => /[\u3040-\u9fff\uac00-\ud7af]/.test(u.firstName ?? ''))).toBe(true);
  });

  it('is deterministic from the seed', async () => {
    const again = await startSandbox({ port: 0, users: USERS, seed: 1 });
    const other = await startSandbox({ port: 0, users: USERS, seed: 2 });
    try {
      const mine = (await get('/user')).text;
      expect((await call(again.urls.source, 'GET', '/user', { headers: auth })).text).toBe(mine);
      expect((await call(other.urls.source, 'GET', '/user', { headers: auth })).text).not.toBe(mine);
    } finally {
      await Promise.all([again.close(), other.close()]);
    }
  });

  it('pages with firstResult and maxResults, the pages adding up to the whole list', async () => {
    const all = users(await get('/user'));
    const pages: User[] = [];
    for (let first = 0; ; first += 70) {
      const page = users(await get(`/user?firstResult=${first}&maxResults=70`));
      pages.push(...page);
      if (page.length < 70) break;
    }
    expect(pages).toEqual(all);
    expect(users(await get('/user?maxResults=0'))).toEqual([]);
    expect(users(await get(`/user?firstResult=${USERS}`))).toEqual([]);
    expect(users(await get('/user?firstResult=5')).length).toBe(USERS - 5);
  });

  it('sorts by each key in both orders, ties broken by id', async () => {
    const all = users(await get('/user'));
    const cmp = (a: unknown, b: unknown) => {
      const as = typeof a === 'string';
      const bs = typeof b === 'string';
      if (as && bs) return a < b ? -1 : a > b ? 1 : 0;
      return as ? 1 : bs ? -1 : 0;
    };
    for (const [by, field] of [
      ['userId', 'id'],
      ['firstName', 'firstName'],
      ['lastName', 'lastName'],
      ['email', 'email'],
    ] as const) {
      for (const order of ['asc', 'desc'] as const) {
        const sign = order === 'asc' ? 1 : -1;
        const expected = [...all].sort((a, b) => sign * cmp(a[field], b[field]) || cmp(a.id, b.id));
        const got = users(await get(`/user?sortBy=${by}&sortOrder=${order}`));
        expect(got.map((u) => u.id)).toEqual(expected.map((u) => u.id));
        const page = users(await get(`/user?sortBy=${by}&sortOrder=${order}&firstResult=100&maxResults=50`));
        expect(page).toEqual(got.slice(100, 150));
      }
    }
  });

  it('answers 400 InvalidRequestException for sortBy without sortOrder and the reverse, and for bad values', async () => {
    const single = invalidRequest('Only a single sorting parameter specified. sortBy and sortOrder required');
    expect(await get('/user?sortBy=firstName')).toMatchObject({ status: 400, body: single });
    expect(await get('/user?sortOrder=asc')).toMatchObject({ status: 400, body: single });
    expect(await get('/user?sortBy=nickname&sortOrder=asc')).toMatchObject({
      status: 400,
      body: invalidRequest("Cannot set query parameter 'sortBy' to value 'nickname'"),
    });
    expect(await get('/user?sortBy=email&sortOrder=up')).toMatchObject({
      status: 400,
      body: invalidRequest("Cannot set query parameter 'sortOrder' to value 'up'"),
    });
    for (const q of ['firstResult=abc', 'firstResult=-1', 'maxResults=1.5', 'maxResults=']) {
      expect(await get(`/user?${q}`)).toMatchObject({
        status: 400,
        body: invalidRequest(/^Cannot set query parameter/),
      });
    }
  });

  it('filters by id, idIn, email (exact, case-sensitive) and names, and counts with the same filters', async () => {
    const all = users(await get('/user'));
    const awkward = all.find((u) => u.id.includes('/'))!;
    expect(users(await get(`/user?id=${encodeURIComponent(awkward.id)}`))).toEqual([awkward]);
    const picks = [all[5]!, all[17]!, all.find((u) => u.id.includes(':'))!];
    const idIn = picks.map((u) => u.id).join(',');
    const byIdIn = users(await get(`/user?idIn=${encodeURIComponent(idIn)}`));
    expect(byIdIn.map((u) => u.id).sort()).toEqual(picks.map((u) => u.id).sort());
    const mixed = all.find((u) => typeof u.email === 'string' && u.email !== u.email.toLowerCase())!;
    expect(users(await get(`/user?email=${encodeURIComponent(mixed.email!)}`))).toEqual([mixed]);
    expect(users(await get(`/user?email=${encodeURIComponent(mixed.email!.toLowerCase())}`))).toEqual([]);
    const name = all[0]!.firstName!;
    const sameName = all.filter((u) => u.firstName === name);
    expect(users(await get(`/user?firstName=${encodeURIComponent(name)}`))).toEqual(sameName);
    expect((await get(`/user/count?firstName=${encodeURIComponent(name)}`)).body).toEqual({
      count: sameName.length,
    });
    expect((await get(`/user/count?idIn=${encodeURIComponent(idIn)}`)).body).toEqual({ count: 3 });
    const orgs = all.filter((u) => typeof u.email === 'string' && u.email.endsWith('@example.org'));
    expect(users(await get('/user?emailLike=%25%40example.org'))).toEqual(orgs);
  });
});

describe('source simulator: GET and PUT /user/{id}/profile', () => {
  it('round-trips every id through GET /user/{id}/profile with percent-encoding', async () => {
    const all = users(await get('/user'));
    for (const u of all) {
      const r = await get(`/user/${camundaSegment(u.id)}/profile`);
      expect(r.status, u.id).toBe(200);
      expect(r.body).toEqual(u);
    }
  });

  it('decodes %2F before routing as Camunda does: a single-encoded / in an id finds no user', async () => {
    const awkward = users(await get('/user')).find((u) => u.id.includes('/'))!;
    expect((await get(`/user/${encodeURIComponent(awkward.id)}/profile`)).status).toBe(404);
    expect((await get(`/user/${camundaSegment(awkward.id)}/profile`)).body).toEqual(awkward);
  });

  it('answers 404 with the Camunda body for an unknown user', async () => {
    for (const id of ['nobody', 'user 999999', 'a/b']) {
      const r = await get(`/user/${camundaSegment(id)}/profile`);
      expect(r).toMatchObject({ status: 404, body: invalidRequest(`User with id ${id} does not exist`) });
      expect((await put(id, { firstName: 'X' })).body).toEqual(
        invalidRequest(`User with id ${id} does not exist`),
      );
    }
  });

  it('updates a profile (204, no content), replacing all four fields as Camunda does', async () => {
    const id = 'ou=sales/000013';
    const r = await put(id, { id, firstName: 'Jöhn', lastName: '山田', email: 'aNewEmailAddress' });
    expect(r.status).toBe(204);
    expect(r.text).toBe('');
    expect((await get(`/user/${camundaSegment(id)}/profile`)).body).toEqual({
      id,
      firstName: 'Jöhn',
      lastName: '山田',
      email: 'aNewEmailAddress',
    });
    expect((await put(id, { firstName: 'Only' })).status).toBe(204);
    expect((await get(`/user/${camundaSegment(id)}/profile`)).body).toEqual({
      id,
      firstName: 'Only',
      lastName: null,
      email: null,
    });
  });

  it('answers 400 for a body that is not a valid profile, 415 for one that is not JSON', async () => {
    const id = 'user-000001';
    const path = `/user/${id}/profile`;
    expect(await put(id, { id: 'user-000002', firstName: 'X' })).toMatchObject({
      status: 400,
      body: invalidRequest(/does not match/),
    });
    expect(await call(sb.urls.source, 'PUT', path, { headers: auth, raw: '{"id":' })).toMatchObject({
      status: 400,
      body: invalidRequest(/not valid JSON/),
    });
    for (const json of [[], 'text', 42, null]) {
      expect(await put(id, json)).toMatchObject({
        status: 400,
        body: invalidRequest(/must be a JSON object/),
      });
    }
    expect(await put(id, { firstName: 7 })).toMatchObject({ status: 400, body: invalidRequest(/firstName/) });
    for (const type of ['text/plain', 'application/x-www-form-urlencoded']) {
      const r = await call(sb.urls.source, 'PUT', path, {
        headers: { ...auth, 'content-type': type },
        raw: '{"firstName":"X"}',
      });
      expect(r).toMatchObject({ status: 415, body: { type: 'NotSupportedException' } });
    }
    const charset = await call(sb.urls.source, 'PUT', path, {
      headers: { ...auth, 'content-type': 'application/json; charset=utf-8' },
      raw: '{"firstName":"Zoë"}',
    });
    expect(charset.status).toBe(204);
    expect(await put(id, { nickname: 'x' })).toMatchObject({ status: 400, body: invalidRequest(/nickname/) });
    expect((await get(path)).body).toEqual(users(await get(`/user?id=${id}`))[0]);
  });

  it('answers 403 read-only, set at start or at run time', async () => {
    // Camunda's UserResourceImpl text (vendor-facts.md).
    const body = invalidRequest('Identity service implementation is read-only.');
    expect(await inspect('PUT', 'read-only', true)).toMatchObject({ status: 200, body: true });
    expect(await put('user-000001', { firstName: 'X' })).toMatchObject({ status: 403, body });
    expect(await put('nobody', { firstName: 'X' })).toMatchObject({ status: 403, body });
    expect((await get('/user/count')).status).toBe(200);
    const ro = await startSandbox({ port: 0, users: 5, readOnly: true });
    try {
      const r = await call(ro.urls.source, 'PUT', '/user/user-000001/profile', { headers: auth, json: {} });
      expect(r).toMatchObject({ status: 403, body });
      expect((await call(ro.urls.source, 'GET', '/__sandbox/state')).body).toEqual({
        users: 5,
        readOnly: true,
        seed: 1,
      });
    } finally {
      await ro.close();
    }
  });

  it('answers unknown routes and methods with Camunda-shaped errors', async () => {
    expect(await get('/users')).toMatchObject({ status: 404, body: { type: 'NotFoundException' } });
    const r = await call(sb.urls.source, 'DELETE', '/user/user-000001/profile', { headers: auth });
    expect(r).toMatchObject({ status: 405, body: { type: 'NotAllowedException' } });
  });
});

describe('source simulator: rate limit and faults', () => {
  it('answers 429 with Retry-After per credential', async () => {
    await inspect('PUT', 'rate-limit', { perMinute: 60, burst: 2 });
    expect((await get('/user/count')).status).toBe(200);
    expect((await get('/user/count')).status).toBe(200);
    const r = await get('/user/count');
    expect(r).toMatchObject({ status: 429, body: { type: 'TooManyRequestsException' } });
    expect(r.headers['retry-after']).toBe('1');
    expect((await get('/user/count', { authorization: 'Bearer sandbox-source-token' })).status).toBe(200);
  });

  it('fails the third page with an injected 500 in the Camunda body, once', async () => {
    await inspect('PUT', 'faults', [
      { kind: 'status', status: 500, times: 1, match: { route: 'GET /user', query: { firstResult: '200' } } },
    ]);
    expect((await get('/user?firstResult=0&maxResults=100')).status).toBe(200);
    expect((await get('/user?firstResult=100&maxResults=100')).status).toBe(200);
    expect(await get('/user?firstResult=200&maxResults=100')).toMatchObject({
      status: 500,
      body: { type: 'ProcessEngineException', message: 'injected fault: 500' },
    });
    expect((await get('/user?firstResult=200&maxResults=100')).status).toBe(200);
    expect((await inspect('GET', 'counters')).body).toEqual({
      byRoute: { 'GET /user': { '200': 3, '500': 1 } },
      total: 4,
    });
  });
});

describe('source simulator: inspection API', () => {
  it('adds one user, many users, and raw invalid records that GET /user returns as stored', async () => {
    expect(
      await inspect('POST', 'users', { id: 'new one', firstName: 'Ève', email: 'EVE@X.test' }),
    ).toMatchObject({
      status: 201,
      body: { stored: 1, ids: ['new one'] },
    });
    // Stored (and answered) with all four keys, a missing one null.
    expect((await get(`/user/${encodeURIComponent('new one')}/profile`)).body).toEqual({
      id: 'new one',
      firstName: 'Ève',
      lastName: null,
      email: 'EVE@X.test',
    });
    expect((await inspect('POST', 'users', [{ id: 'm1' }, { id: 'm2', lastName: null }])).status).toBe(201);
    const long = 'x'.repeat(100_000);
    const raw = [{ firstName: 'no id' }, { id: 42, firstName: ['wrong'] }, { id: 'long', firstName: long }];
    expect((await inspect('POST', 'users', { raw })).body).toEqual({ stored: 3, ids: [null, 42, 'long'] });
    expect((await get('/user/count')).body).toEqual({ count: USERS + 6 });
    const all = users(await get('/user'));
    expect(all).toEqual(expect.arrayContaining(raw));
    expect((await get('/user/long/profile')).body).toEqual({ id: 'long', firstName: long });
    expect((await inspect('POST', 'users', { id: 3 })).status).toBe(400);
    expect((await inspect('POST', 'users', { id: 'x', age: 3 })).status).toBe(400);
  });

  it('patches and deletes a user', async () => {
    const id = 'user-000002';
    expect(await inspect('PATCH', `users/${id}`, { email: 'Changed@Example.COM' })).toMatchObject({
      status: 200,
      body: { id, email: 'Changed@Example.COM' },
    });
    expect((await get(`/user/${id}/profile`)).body).toMatchObject({ email: 'Changed@Example.COM' });
    expect((await inspect('DELETE', `users/${id}`)).status).toBe(204);
    expect((await get(`/user/${id}/profile`)).status).toBe(404);
    expect((await inspect('DELETE', `users/${id}`)).status).toBe(404);
    expect((await inspect('PATCH', `users/${id}`, { email: 'x' })).status).toBe(404);
  });

  it('mutates a deterministic share of users and returns the changed ids', async () => {
    const before = users(await get('/user'));
    const r = await inspect('POST', 'users/mutate', { share: 0.05, seed: 3, fields: ['email'] });
    const changed = (r.body as { changed: string[] }).changed;
    expect(changed).toHaveLength(15);
    const after = users(await get('/user'));
    for (const [i, u] of after.entries()) {
      const old = before[i]!;
      if (changed.includes(u.id)) {
        expect(u.email).not.toEqual(old.email);
        expect(u.firstName).toEqual(old.firstName);
      } else expect(u).toEqual(old);
    }
    await inspect('POST', 'reset');
    expect((await inspect('POST', 'users/mutate', { share: 0.05, seed: 3, fields: ['email'] })).body).toEqual(
      { changed },
    );
    const names = (await inspect('POST', 'users/mutate', { share: 0.02, seed: 4 })).body as {
      changed: string[];
    };
    expect(names.changed).toHaveLength(6);
    expect((await inspect('POST', 'users/mutate', { share: 2 })).status).toBe(400);
    expect((await inspect('POST', 'users/mutate', { share: 0.1, fields: ['age'] })).status).toBe(400);
  });

  it('removes users by ids or by share', async () => {
    expect((await inspect('POST', 'users/remove', { ids: ['user-000001', 'nobody'] })).body).toEqual({
      removed: ['user-000001'],
    });
    const r = await inspect('POST', 'users/remove', { share: 0.1, seed: 5 });
    expect((r.body as { removed: string[] }).removed).toHaveLength(30);
    expect((await get('/user/count')).body).toEqual({ count: USERS - 31 });
    expect((await inspect('GET', 'state')).body).toEqual({ users: USERS - 31, readOnly: false, seed: 1 });
  });
});

describe('source simulator: a list that moves between pages (issue 8.1)', () => {
  it('a one-shot hook removes and adds users right after the n-th GET /user page', async () => {
    const before = users(await get('/user?sortBy=userId&sortOrder=asc&firstResult=0&maxResults=10'));
    const gone = before[1]!.id;
    const hook = {
      afterPage: 2,
      remove: [gone],
      add: [{ id: 'aaa-inserted', firstName: 'In' }],
    };
    expect((await inspect('POST', 'users/on-page', hook)).status).toBe(201);
    expect((await inspect('POST', 'users/on-page', { afterPage: 0 })).status).toBe(400);
    expect(
      (await inspect('POST', 'users/on-page', { afterPage: 1, add: [{ id: 'x', age: 1 }] })).status,
    ).toBe(400);
    // idIn lookups do not count as pages; the first page leaves the users as they were.
    await get(`/user?idIn=${encodeURIComponent(gone)}`);
    await get('/user?firstResult=0&maxResults=5');
    expect(users(await get(`/user?idIn=${encodeURIComponent(gone)}`))).toHaveLength(1);
    // The second page is answered as before, then the change happens.
    expect(users(await get('/user?sortBy=userId&sortOrder=asc&firstResult=0&maxResults=10'))).toEqual(before);
    expect(users(await get(`/user?idIn=${encodeURIComponent(gone)}`))).toHaveLength(0);
    expect((await get('/user/aaa-inserted/profile')).body).toEqual({
      id: 'aaa-inserted',
      firstName: 'In',
      lastName: null,
      email: null,
    });
    // One-shot: nothing pending any more.
    expect((await inspect('GET', 'page-hooks')).body).toEqual([]);
    await inspect('DELETE', 'users/aaa-inserted');
    await inspect('POST', 'users', before[1]!);
  });
});
