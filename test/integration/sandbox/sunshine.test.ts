import { request } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Sim, type SimOptions, startSim } from '../../../src/sandbox/kit/index.js';
import { type SunshineVendor, sunshineVendor } from '../../../src/sandbox/sunshine/index.js';

// Real loopback server: the vendor on the kit, as startSandbox serves it.
let sim: Sim;
let vendor: SunshineVendor;
let clock = Date.UTC(2026, 0, 1);

async function start(options: SimOptions = {}): Promise<void> {
  vendor = sunshineVendor({ now: () => clock, rateLimit: () => sim.rateLimit() });
  sim = await startSim(vendor, { now: () => clock, ...options });
}

beforeEach(async () => {
  clock = Date.UTC(2026, 0, 1);
  await start();
});
afterEach(async () => {
  await sim.close();
});

const AUTH = `Basic ${Buffer.from('sync@sandbox.test/token:sandbox-sunshine-token').toString('base64')}`;

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  // biome-ignore lint/suspicious/noExplicitAny: test answers are read field by field
  body: any;
}

async function call(
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = { authorization: AUTH },
): Promise<Answer> {
  const res = await request(`${sim.url}${path}`, {
    method: method as 'GET',
    headers: { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}

/** 003's error shape, exactly: `{"errors":[{"code","id","title"}]}`. */
function expectError(a: Answer, status: number, code: string): void {
  expect(a.status, JSON.stringify(a.body)).toBe(status);
  expect(Object.keys(a.body)).toEqual(['errors']);
  expect(a.body.errors).toHaveLength(1);
  expect(Object.keys(a.body.errors[0]).sort()).toEqual(['code', 'id', 'title']);
  expect(a.body.errors[0].code).toBe(code);
  expect(typeof a.body.errors[0].id).toBe('string');
  expect(typeof a.body.errors[0].title).toBe('string');
}

const idq = (query: string) => `identifier=${encodeURIComponent(query)}`;
const body = (profile: Record<string, unknown>) => ({ profile });
const jane = body({
  name: 'Jane Doe',
  identifiers: [{ type: 'email', value: 'JDoe@Example.com' }],
  attributes: { favorite_color: 'red', saddle_height: '85cm' },
});

describe('Sunshine simulator: authentication', () => {
  it('accepts {email}/token:{api_token} basic auth and answers 401 otherwise', async () => {
    expectError(await call('GET', '/api/v2/user_profiles/x', undefined, {}), 401, 'Unauthorized');
    const wrong = [
      'sync@sandbox.test/token:wrong',
      'sync@sandbox.test:sandbox-sunshine-token',
      'other@sandbox.test/token:sandbox-sunshine-token',
    ];
    for (const pair of wrong) {
      const a = await call('GET', '/api/v2/user_profiles/x', undefined, {
        authorization: `Basic ${Buffer.from(pair).toString('base64')}`,
      });
      expectError(a, 401, 'Unauthorized');
      expect(a.headers['www-authenticate']).toMatch(/^Basic/);
      expect(JSON.stringify(a.body)).not.toContain('sandbox-sunshine-token');
    }
    expectError(
      await call('GET', '/api/v2/user_profiles/x', undefined, { authorization: 'Bearer x' }),
      401,
      'Unauthorized',
    );
    expectError(await call('GET', '/api/v2/user_profiles/x'), 404, 'ClientError');
  });
});

describe('Sunshine simulator: create, read, replace, patch, delete', () => {
  it('PUT by identifier creates (201), then replaces (200) keeping id and created_at', async () => {
    const created = await call(
      'PUT',
      `/api/v2/user_profiles?${idq('coolbikes:rider:email:jdoe@example.com')}`,
      jane,
    );
    expect(created.status).toBe(201);
    const p = created.body.profile;
    expect(p).toMatchObject({
      name: 'Jane Doe',
      source: 'coolbikes',
      type: 'rider',
      identifiers: [{ type: 'email', value: 'jdoe@example.com' }],
      attributes: { favorite_color: 'red', saddle_height: '85cm' },
      created_at: '2026-01-01T00:00:00.000Z',
      updated_at: '2026-01-01T00:00:00.000Z',
    });
    expect(p.id).toMatch(/^[0-9A-Z]{26}$/);
    expect(typeof p.user_id).toBe('string');

    clock += 5000;
    const replaced = await call(
      'PUT',
      `/api/v2/user_profiles?${idq('coolbikes:rider:email:JDOE@example.com')}`,
      body({
        identifiers: [{ type: 'email', value: 'jdoe@example.com' }],
        attributes: { height: '103cm' },
        source: 'x',
      }),
    );
    expect(replaced.status).toBe(200);
    expect(replaced.body.profile).toEqual({
      ...p,
      name: 'jdoe@example.com',
      attributes: { height: '103cm' },
      updated_at: '2026-01-01T00:00:05.000Z',
    });

    const byId = await call('GET', `/api/v2/user_profiles/${p.id}`);
    expect(byId.status).toBe(200);
    expect(byId.body).toEqual(replaced.body);
    const byQuery = await call(
      'GET',
      `/api/v2/user_profiles?${idq('coolbikes:rider:email:JDoe@EXAMPLE.com')}`,
    );
    expect(byQuery.body).toEqual(replaced.body);
    expectError(
      await call('GET', `/api/v2/user_profiles?${idq('coolbikes:rider:email:no@example.com')}`),
      404,
      'ClientError',
    );
  });

  it('PUT by id replaces (200) and is 404 for an unknown id', async () => {
    const p = (
      await call(
        'PUT',
        `/api/v2/user_profiles?${idq('s:t:external_id:1')}`,
        body({ identifiers: [], attributes: { a: 1 } }),
      )
    ).body.profile;
    const r = await call(
      'PUT',
      `/api/v2/user_profiles/${p.id}`,
      body({ identifiers: [{ type: 'external_id', value: '1' }], attributes: { b: 2 }, name: 'N' }),
    );
    expect(r.status).toBe(200);
    expect(r.body.profile).toMatchObject({
      id: p.id,
      created_at: p.created_at,
      attributes: { b: 2 },
      name: 'N',
    });
    expectError(
      await call(
        'PUT',
        '/api/v2/user_profiles/01ARZ3NDEKTSV4RRFFQ69G5FAV',
        body({ identifiers: [], attributes: {} }),
      ),
      404,
      'ClientError',
    );
  });

  it("PATCH merges attributes and replaces the name (001's example), by query and by id", async () => {
    await call(
      'PUT',
      `/api/v2/user_profiles?${idq('coolbikes:rider:email:jdoe@example.com')}`,
      body({ ...jane.profile, name: 'sunshine_user' }),
    );
    const patched = await call(
      'PATCH',
      `/api/v2/user_profiles?${idq('coolbikes:rider:email:jdoe@example.com')}`,
      body({ name: 'Jane Doe', attributes: { saddle_height: '87cm' } }),
    );
    expect(patched.status).toBe(200);
    expect(patched.body.profile).toMatchObject({
      name: 'Jane Doe',
      attributes: { favorite_color: 'red', saddle_height: '87cm' },
      identifiers: [{ type: 'email', value: 'jdoe@example.com' }],
    });
    const byId = await call(
      'PATCH',
      `/api/v2/user_profiles/${patched.body.profile.id}`,
      body({ attributes: { joined: '2018' } }),
    );
    expect(byId.body.profile.attributes).toEqual({
      favorite_color: 'red',
      saddle_height: '87cm',
      joined: '2018',
    });
    expect(byId.body.profile.name).toBe('Jane Doe');
  });

  it('PATCH adds a new email as a second identifier and ignores source, type and user_id', async () => {
    const p = (
      await call('PUT', `/api/v2/user_profiles?${idq('coolbikes:rider:email:jdoe@example.com')}`, jane)
    ).body.profile;
    const patched = await call(
      'PATCH',
      `/api/v2/user_profiles/${p.id}`,
      body({
        source: 'other',
        type: 'other',
        user_id: '42',
        identifiers: [{ type: 'email', value: 'Jane.New@Example.com' }],
      }),
    );
    expect(patched.status).toBe(200);
    expect(patched.body.profile).toMatchObject({
      source: 'coolbikes',
      type: 'rider',
      user_id: p.user_id,
      identifiers: [
        { type: 'email', value: 'jdoe@example.com' },
        { type: 'email', value: 'jane.new@example.com' },
      ],
    });
  });

  it('PATCH is 404 when the profile is absent', async () => {
    expectError(
      await call('PATCH', '/api/v2/user_profiles/nope', body({ attributes: {} })),
      404,
      'ClientError',
    );
    expectError(
      await call('PATCH', `/api/v2/user_profiles?${idq('s:t:email:none@x.io')}`, body({ attributes: {} })),
      404,
      'ClientError',
    );
  });

  it('DELETE answers 204 without a body, then 404', async () => {
    const p = (
      await call(
        'PUT',
        `/api/v2/user_profiles?${idq('s:t:email:a@x.io')}`,
        body({ identifiers: [], attributes: {} }),
      )
    ).body.profile;
    const d = await call('DELETE', `/api/v2/user_profiles/${p.id}`);
    expect(d.status).toBe(204);
    expect(d.body).toBeUndefined();
    expectError(await call('GET', `/api/v2/user_profiles/${p.id}`), 404, 'ClientError');
    expectError(await call('DELETE', `/api/v2/user_profiles/${p.id}`), 404, 'ClientError');
  });
});

describe('Sunshine simulator: identifier queries', () => {
  it('takes a percent-encoded query whose value holds ":" and "+"', async () => {
    const q = 'crm:contact:email:Jane+Tag@X.io';
    const created = await call(
      'PUT',
      `/api/v2/user_profiles?${idq(q)}`,
      body({ identifiers: [], attributes: {} }),
    );
    expect(created.status).toBe(201);
    expect(created.body.profile.identifiers).toEqual([{ type: 'email', value: 'jane+tag@x.io' }]);
    const urn = await call(
      'PUT',
      `/api/v2/user_profiles?${idq('crm:contact:urn:urn:isbn:0451450523')}`,
      body({ identifiers: [], attributes: {} }),
    );
    expect(urn.body.profile.identifiers).toEqual([{ type: 'urn', value: 'urn:isbn:0451450523' }]);
    // Unencoded colons in the query string work too (003's own examples send them raw).
    expect(
      (await call('GET', '/api/v2/user_profiles?identifier=crm:contact:urn:urn:isbn:0451450523')).status,
    ).toBe(200);
    // An unencoded "+" is a space in a query string, so it names another identifier.
    expect(
      (await call('GET', '/api/v2/user_profiles?identifier=crm:contact:email:jane+tag@x.io')).status,
    ).toBe(404);
  });

  it('answers 400 for a missing or malformed identifier query', async () => {
    for (const path of [
      '/api/v2/user_profiles',
      '/api/v2/user_profiles?identifier=',
      `/api/v2/user_profiles?${idq('s:t:email')}`,
      `/api/v2/user_profiles?${idq('s::email:a@x.io')}`,
    ]) {
      expectError(await call('GET', path), 400, 'ClientError');
      expectError(await call('PUT', path, body({ identifiers: [], attributes: {} })), 400, 'ClientError');
      expectError(await call('PATCH', path, body({ attributes: {} })), 400, 'ClientError');
    }
  });
});

describe('Sunshine simulator: validation and limits', () => {
  const put = (q: string, b: unknown) => call('PUT', `/api/v2/user_profiles?${idq(q)}`, b);

  it('answers 400 for a body that is not JSON or lacks the mandatory fields', async () => {
    expectError(await put('s:t:email:a@x.io', '{"profile": '), 400, 'ClientError');
    expectError(await put('s:t:email:a@x.io', undefined), 400, 'ClientError');
    expectError(await put('s:t:email:a@x.io', { identifiers: [], attributes: {} }), 400, 'ClientError');
    expectError(await put('s:t:email:a@x.io', body({ identifiers: [] })), 400, 'ClientError');
    expectError(await put('s:t:email:a@x.io', body({ attributes: {} })), 400, 'ClientError');
    expectError(await put('s:t:email:a@x.io', body({ attributes: [], identifiers: [] })), 400, 'ClientError');
    expectError(
      await put('s:t:email:a@x.io', body({ attributes: {}, identifiers: 'a@x.io' })),
      400,
      'ClientError',
    );
    expect((await call('GET', '/__sandbox/profiles')).body).toEqual([]);
    const p = (await put('s:t:email:a@x.io', body({ identifiers: [], attributes: {} }))).body.profile;
    expectError(await call('PATCH', `/api/v2/user_profiles/${p.id}`, '{'), 400, 'ClientError');
    expectError(
      await call('PATCH', `/api/v2/user_profiles/${p.id}`, body({ attributes: 'x' })),
      400,
      'ClientError',
    );
    expectError(
      await call('PATCH', `/api/v2/user_profiles/${p.id}`, body({ identifiers: {} })),
      400,
      'ClientError',
    );
    // The profile is looked up first: an unknown id is 404 whatever the body.
    expectError(await call('PATCH', '/api/v2/user_profiles/unknown', '{'), 404, 'ClientError');
  });

  it('refuses more than 20 identifiers, a source or type over 40 characters, and the source zendesk', async () => {
    const many = (n: number) => Array.from({ length: n }, (_, i) => ({ type: 'member', value: `m${i}` }));
    expect((await put('s:t:member:m0', body({ identifiers: many(20), attributes: {} }))).status).toBe(201);
    expectError(
      await put(
        's:t:member:x0',
        body({ identifiers: many(21).map((i) => ({ ...i, value: `x${i.value}` })), attributes: {} }),
      ),
      400,
      'ClientError',
    );
    expect(
      (
        await put(
          `${'s'.repeat(40)}:${'t'.repeat(40)}:email:a@x.io`,
          body({ identifiers: [], attributes: {} }),
        )
      ).status,
    ).toBe(201);
    expectError(
      await put(`${'s'.repeat(41)}:t:email:a@x.io`, body({ identifiers: [], attributes: {} })),
      400,
      'ClientError',
    );
    expectError(
      await put(`s:${'t'.repeat(41)}:email:a@x.io`, body({ identifiers: [], attributes: {} })),
      400,
      'ClientError',
    );
    const reserved = await put('zendesk:t:email:a@x.io', body({ identifiers: [], attributes: {} }));
    expectError(reserved, 400, 'ClientError');
    expect(reserved.body.errors[0].title).toMatch(/zendesk/);
  });
});

describe('Sunshine simulator: profiles per person', () => {
  it('a Zendesk user holds at most 20 profiles (vendor-facts.md): the 21st is a 400', async () => {
    const put = (q: string) =>
      call('PUT', `/api/v2/user_profiles?${idq(q)}`, body({ identifiers: [], attributes: {} }));
    for (let i = 1; i <= 20; i++) expect((await put(`src${i}:t:email:same@x.io`)).status, `#${i}`).toBe(201);
    const over = await put('src21:t:email:same@x.io');
    expectError(over, 400, 'ClientError');
    expect(over.body.errors[0].title).toMatch(/maximum number of profiles/);
    // Replacing one of the 20 still works.
    const again = await call(
      'PUT',
      `/api/v2/user_profiles?${idq('src20:t:email:same@x.io')}`,
      body({ identifiers: [{ type: 'email', value: 'same@x.io' }], attributes: { n: 20 } }),
    );
    expect(again.status).toBe(200);
  });
});

describe('Sunshine simulator: Zendesk users', () => {
  it('links a profile to the user with a matching identity; otherwise creates an anonymous user', async () => {
    const u = await call('POST', '/__sandbox/users', {
      name: 'Jane',
      identities: [{ type: 'email', value: 'jane@x.io' }],
    });
    expect(u.status).toBe(201);
    const linked = await call(
      'PUT',
      `/api/v2/user_profiles?${idq('s:t:external_id:7')}`,
      body({ identifiers: [{ type: 'email', value: 'JANE@x.io' }], attributes: {} }),
    );
    expect(linked.body.profile.user_id).toBe(u.body.id);
    const other = await call(
      'PUT',
      `/api/v2/user_profiles?${idq('s:t:external_id:8')}`,
      body({ identifiers: [], attributes: {} }),
    );
    expect(other.body.profile.user_id).not.toBe(u.body.id);
    const anon = await call('GET', `/__sandbox/users/${other.body.profile.user_id}`);
    expect(anon.body).toMatchObject({ anonymous: true, external_id: '8' });
    const janeUser = await call('GET', `/__sandbox/users/${u.body.id}`);
    expect(janeUser.body).toMatchObject({ anonymous: false, external_id: '7' });
  });

  it('fails when the identifiers belong to several users', async () => {
    await call('POST', '/__sandbox/users', { identities: [{ type: 'email', value: 'a@x.io' }] });
    await call('POST', '/__sandbox/users', { identities: [{ type: 'email', value: 'b@x.io' }] });
    const a = await call(
      'PUT',
      `/api/v2/user_profiles?${idq('s:t:email:a@x.io')}`,
      body({ identifiers: [{ type: 'email', value: 'b@x.io' }], attributes: {} }),
    );
    expectError(a, 400, 'ClientError');
  });

  it("lists a user's profiles and creates under /users/{user_id}; 404 for an unknown user", async () => {
    const u = (
      await call('POST', '/__sandbox/users', { identities: [{ type: 'email', value: 'jane@x.io' }] })
    ).body;
    const created = await call(
      'PUT',
      `/api/v2/users/${u.id}/profiles?${idq('shop:customer:member:m1')}`,
      body({ identifiers: [], attributes: { tier: 'gold' } }),
    );
    expect(created.status).toBe(201);
    expect(created.body.profile.user_id).toBe(u.id);
    const updated = await call(
      'PUT',
      `/api/v2/users/${u.id}/profiles?${idq('shop:customer:member:m1')}`,
      body({ identifiers: [{ type: 'member', value: 'm1' }], attributes: {} }),
    );
    expect(updated.status).toBe(200);
    const list = await call('GET', `/api/v2/users/${u.id}/profiles`);
    expect(list.status).toBe(200);
    expect(list.body).toEqual({ profiles: [updated.body.profile] });
    expectError(await call('GET', '/api/v2/users/999/profiles'), 404, 'ClientError');
    expectError(
      await call(
        'PUT',
        `/api/v2/users/999/profiles?${idq('shop:customer:member:m2')}`,
        body({ identifiers: [], attributes: {} }),
      ),
      404,
      'ClientError',
    );
  });

  it('derives the profile name from the identifiers when none is given', async () => {
    const a = await call(
      'PUT',
      `/api/v2/user_profiles?${idq('s:t:member:1')}`,
      body({ identifiers: [{ type: 'twitter', value: 'FooBar' }], attributes: {} }),
    );
    expect(a.body.profile.name).toBe('Twitter user foobar');
    const b = await call(
      'PUT',
      `/api/v2/user_profiles?${idq('s:t:Shado:FooBar')}`,
      body({ identifiers: [], attributes: {} }),
    );
    expect(b.body.profile.name).toBe('Shado user FooBar');
  });
});

describe('Sunshine simulator: rate limits, faults, kit errors', () => {
  it('answers 429 with Retry-After in seconds and the X-Rate-Limit headers, which successful answers carry too', async () => {
    sim.setRateLimit({ perMinute: 6, burst: 2 });
    const first = await call('GET', '/api/v2/users/1/profiles');
    expect(first.headers['x-rate-limit']).toBe('6');
    expect(first.headers['x-rate-limit-remaining']).toBe('1');
    const second = await call('GET', '/api/v2/users/1/profiles');
    expect(second.headers['x-rate-limit-remaining']).toBe('0');
    const limited = await call('GET', '/api/v2/users/1/profiles');
    expectError(limited, 429, 'TooManyRequests');
    // 6 a minute = one token every 10 s.
    expect(limited.headers['retry-after']).toBe('10');
    expect(limited.headers['x-rate-limit']).toBe('6');
    expect(limited.headers['x-rate-limit-remaining']).toBe('0');
    clock += 10_000;
    expect((await call('GET', '/api/v2/users/1/profiles')).status).toBe(404);
  });

  it('sends no rate headers when unlimited', async () => {
    const a = await call('GET', '/api/v2/users/1/profiles');
    expect(a.headers['x-rate-limit']).toBeUndefined();
  });

  it('uses its error shape for injected faults, unknown routes and wrong methods', async () => {
    sim.setFaults([{ kind: 'status', status: 503, times: 1 }]);
    expectError(await call('GET', '/api/v2/users/1/profiles'), 503, 'ServiceUnavailable');
    sim.setFaults([{ kind: 'status', status: 500, times: 1 }]);
    expectError(await call('GET', '/api/v2/users/1/profiles'), 500, 'InternalServerError');
    expectError(await call('GET', '/api/v2/nothing'), 404, 'InvalidEndpoint');
    expectError(await call('POST', '/api/v2/user_profiles/x'), 405, 'MethodNotAllowed');
  });

  it('answers 403 while the Profiles API is not activated', async () => {
    expect((await call('PUT', '/__sandbox/settings', { profilesEnabled: false })).status).toBe(200);
    expectError(await call('GET', '/api/v2/users/1/profiles'), 403, 'ClientError');
    await call('PUT', '/__sandbox/settings', { profilesEnabled: true });
    expectError(await call('GET', '/api/v2/users/1/profiles'), 404, 'ClientError');
  });
});

describe('Sunshine simulator: inspection API', () => {
  it('lists and gets profiles and users, and shows them in the state', async () => {
    const p = (
      await call(
        'PUT',
        `/api/v2/user_profiles?${idq('s:t:email:a@x.io')}`,
        body({ identifiers: [], attributes: {} }),
      )
    ).body.profile;
    expect((await call('GET', '/__sandbox/profiles', undefined, {})).body).toEqual([p]);
    expect((await call('GET', `/__sandbox/profiles?user_id=${p.user_id}`, undefined, {})).body).toEqual([p]);
    expect((await call('GET', '/__sandbox/profiles?user_id=0', undefined, {})).body).toEqual([]);
    expect((await call('GET', `/__sandbox/profiles/${p.id}`, undefined, {})).body).toEqual(p);
    expect((await call('GET', '/__sandbox/profiles/nope', undefined, {})).status).toBe(404);
    const users = (await call('GET', '/__sandbox/users', undefined, {})).body;
    expect(users.map((u: { id: string }) => u.id)).toEqual([p.user_id]);
    const state = (await call('GET', '/__sandbox/state', undefined, {})).body;
    expect(state.profiles).toEqual([p]);
    expect(state.users).toEqual(users);
  });

  it('edits a profile directly, as a Zendesk agent would; PATCH keeps the edit, PUT replaces it', async () => {
    const q = idq('s:t:email:a@x.io');
    const p = (
      await call('PUT', `/api/v2/user_profiles?${q}`, body({ identifiers: [], attributes: { mine: '1' } }))
    ).body.profile;
    const edited = await call('PATCH', `/__sandbox/profiles/${p.id}`, {
      attributes: { foreign: 'kept?' },
      identifiers: [{ type: 'crm_id', value: 'C-9' }],
    });
    expect(edited.status).toBe(200);
    const afterPatch = (
      await call('PATCH', `/api/v2/user_profiles?${q}`, body({ attributes: { mine: '2' } }))
    ).body.profile;
    expect(afterPatch.attributes).toEqual({ mine: '2', foreign: 'kept?' });
    expect(afterPatch.identifiers).toContainEqual({ type: 'crm_id', value: 'C-9' });
    const afterPut = (
      await call(
        'PUT',
        `/api/v2/user_profiles?${q}`,
        body({ identifiers: [{ type: 'email', value: 'a@x.io' }], attributes: { mine: '3' } }),
      )
    ).body.profile;
    expect(afterPut.attributes).toEqual({ mine: '3' });
    expect(afterPut.identifiers).toEqual([{ type: 'email', value: 'a@x.io' }]);
    expect((await call('PATCH', '/__sandbox/profiles/nope', { name: 'x' })).status).toBe(404);
    expect((await call('PATCH', `/__sandbox/profiles/${p.id}`, { name: 1 })).status).toBe(400);
  });

  it('reset forgets profiles and users', async () => {
    await call(
      'PUT',
      `/api/v2/user_profiles?${idq('s:t:email:a@x.io')}`,
      body({ identifiers: [], attributes: {} }),
    );
    expect((await call('POST', '/__sandbox/reset')).status).toBe(204);
    expect(vendor.store.listProfiles()).toEqual([]);
    expect(vendor.store.listUsers()).toEqual([]);
  });
});
