import { request } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Sim, type SimOptions, startSim } from '../../../src/sandbox/kit/index.js';
import {
  inUnknownShare,
  type PreludeVendorOptions,
  preludeVendor,
} from '../../../src/sandbox/prelude/index.js';
import { validateRequest, validateResponse } from '../../unit/sandbox/prelude/openapi.js';

let sim: Sim | undefined;
let clock = Date.UTC(2026, 0, 1);

async function start(vendorOptions: PreludeVendorOptions = {}, simOptions: SimOptions = {}): Promise<void> {
  await stop();
  sim = await startSim(preludeVendor({ seed: 1, unknownShare: 0.1, ...vendorOptions }), {
    now: () => clock,
    ...simOptions,
  });
}

beforeEach(async () => {
  clock = Date.UTC(2026, 0, 1);
  await start();
});
afterEach(stop);

async function stop(): Promise<void> {
  const running = sim;
  sim = undefined;
  await running?.close();
}

const KEY = 'sandbox-prelude-key';
const ids = Array.from({ length: 200 }, (_, i) => `usr_${String(i).padStart(4, '0')}`);
const KNOWN = ids.find((id) => !inUnknownShare(1, id, 0.1))!;
const UNKNOWN = ids.find((id) => inUnknownShare(1, id, 0.1))!;

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  // biome-ignore lint/suspicious/noExplicitAny: test answers are read field by field
  body: any;
  raw: string;
}

async function call(
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = { authorization: `Bearer ${KEY}` },
): Promise<Answer> {
  const res = await request(`${sim!.url}${path}`, {
    method: method as 'PATCH',
    headers: { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const raw = await res.body.text();
  return { status: res.statusCode, headers: res.headers, body: raw ? JSON.parse(raw) : undefined, raw };
}

const patch = (userId: string, body: unknown, appId = 'app_sandbox', headers?: Record<string, string>) =>
  call(
    'PATCH',
    `/v2/session/apps/${encodeURIComponent(appId)}/users/${encodeURIComponent(userId)}/profile`,
    body,
    headers,
  );

/**
 * Every error answer is exactly `{code, status, message}`; for the statuses the OpenAPI documents, the
 * body must validate against that status's response schema (its oneOf) in prelude-openapi.yaml.
 */
function expectError(a: Answer, status: number, code: string, documented = true): void {
  expect(a.status, a.raw).toBe(status);
  expect(a.headers['content-type']).toMatch(/^application\/json/);
  expect(Object.keys(a.body).sort()).toEqual(['code', 'message', 'status']);
  expect(a.body.code).toBe(code);
  expect(typeof a.body.status).toBe('string');
  expect(typeof a.body.message).toBe('string');
  if (documented && [400, 403, 404].includes(status)) {
    const v = validateResponse(status);
    expect(v(a.body), JSON.stringify(v.errors)).toBe(true);
  }
}

async function stored(userId: string, appId = 'app_sandbox'): Promise<unknown> {
  const a = await call(
    'GET',
    `/__sandbox/profiles/${encodeURIComponent(userId)}?app=${appId}`,
    undefined,
    {},
  );
  return a.status === 200 ? a.body.profile : undefined;
}

describe('Prelude simulator: PATCH profile', () => {
  it('answers 204 without a body and merges keys into the stored profile', async () => {
    const first = await patch(KNOWN, { profile: { first_name: 'Jane', last_name: 'Smith' } });
    expect(first.status).toBe(204);
    expect(first.raw).toBe('');
    const second = await patch(KNOWN, { profile: { last_name: 'Doe', email: 'jane@x.io' } });
    expect(second.status).toBe(204);
    expect(await stored(KNOWN)).toEqual({ first_name: 'Jane', last_name: 'Doe', email: 'jane@x.io' });
  });

  it('keeps a key sent as "" with an empty string (how profile-sync clears a field)', async () => {
    await patch(KNOWN, { profile: { first_name: 'Jane', last_name: 'Smith' } });
    expect((await patch(KNOWN, { profile: { last_name: '' } })).status).toBe(204);
    expect(await stored(KNOWN)).toEqual({ first_name: 'Jane', last_name: '' });
  });

  it('decodes the user id from the path', async () => {
    const odd = 'usr_ä/b c';
    await call('PUT', `/__sandbox/users/${encodeURIComponent(odd)}`, undefined, {});
    expect((await patch(odd, { profile: { a: 'b' } })).status).toBe(204);
    expect(await stored(odd)).toEqual({ a: 'b' });
    const state = (await call('GET', '/__sandbox/state', undefined, {})).body;
    expect(state.apps.app_sandbox.profiles[odd]).toEqual({ a: 'b' });
  });
});

describe('Prelude simulator: errors, each as the OpenAPI says', () => {
  it('401 without a valid bearer key, in the same {code, status, message} shape', async () => {
    const variants: Record<string, string>[] = [
      {},
      { authorization: 'Bearer wrong' },
      { authorization: `Basic ${KEY}` },
      { authorization: KEY },
    ];
    for (const headers of variants) {
      const a = await patch(KNOWN, { profile: {} }, 'app_sandbox', headers);
      expectError(a, 401, 'unauthorized');
      expect(a.raw).not.toContain(KEY);
    }
  });

  it('400 invalid_request for a body that is not JSON, has no profile, or is not an object of strings', async () => {
    const bad: unknown[] = [
      '{"profile": ',
      'not json',
      undefined,
      {},
      { profiles: { a: 'b' } },
      { profile: null },
      { profile: [] },
      { profile: 'a' },
      { profile: { a: 1 } },
      { profile: { a: null } },
      { profile: { a: true, b: 'c' } },
      { profile: { a: { b: 'c' } } },
      [],
      '"profile"',
    ];
    for (const body of bad) expectError(await patch(KNOWN, body), 400, 'invalid_request');
    expect(await stored(KNOWN)).toBeUndefined();
  });

  it('400 reserved_profile_key for a reserved key, storing nothing', async () => {
    for (const key of ['sub', 'exp', 'user_id', 'prelude_role', '_hidden']) {
      expectError(
        await patch(KNOWN, { profile: { first_name: 'Jane', [key]: 'x' } }),
        400,
        'reserved_profile_key',
      );
    }
    expect(await stored(KNOWN)).toBeUndefined();
  });

  it('404 app_not_found for an unknown app', async () => {
    expectError(await patch(KNOWN, { profile: { a: 'b' } }, 'no_such_app'), 404, 'app_not_found');
  });

  it('403 session_disabled for an app with session management disabled, set by option or at run time', async () => {
    await start({ moreAppIds: ['app_off'], sessionDisabledApps: ['app_off'] });
    expectError(await patch(KNOWN, { profile: { a: 'b' } }, 'app_off'), 403, 'session_disabled');
    expect((await patch(KNOWN, { profile: { a: 'b' } })).status).toBe(204);

    const off = await call('PUT', '/__sandbox/apps/app_sandbox', { sessionEnabled: false }, {});
    expect(off.body).toEqual({ appId: 'app_sandbox', sessionEnabled: false });
    expectError(await patch(KNOWN, { profile: { a: 'c' } }), 403, 'session_disabled');
    await call('PUT', '/__sandbox/apps/app_sandbox', { sessionEnabled: true }, {});
    expect((await patch(KNOWN, { profile: { a: 'c' } })).status).toBe(204);
  });

  it('checks in the documented order: app, session, body, reserved key, user', async () => {
    await start({ moreAppIds: ['app_off'], sessionDisabledApps: ['app_off'] });
    expectError(await patch(UNKNOWN, '{bad', 'no_such_app'), 404, 'app_not_found');
    expectError(await patch(UNKNOWN, '{bad', 'app_off'), 403, 'session_disabled');
    expectError(await patch(UNKNOWN, { profile: { a: 1, sub: 'x' } }), 400, 'invalid_request');
    expectError(await patch(UNKNOWN, { profile: { sub: 'x' } }), 400, 'reserved_profile_key');
    expectError(await patch(UNKNOWN, { profile: { a: 'b' } }), 404, 'user_not_found');
  });

  it('apps can be added and removed at run time', async () => {
    expectError(await patch(KNOWN, { profile: { a: 'b' } }, 'app_new'), 404, 'app_not_found');
    expect((await call('PUT', '/__sandbox/apps/app_new', {}, {})).body).toEqual({
      appId: 'app_new',
      sessionEnabled: true,
    });
    expect((await patch(KNOWN, { profile: { a: 'b' } }, 'app_new')).status).toBe(204);
    expect(await stored(KNOWN, 'app_new')).toEqual({ a: 'b' });
    expect(await stored(KNOWN)).toBeUndefined();
    expect((await call('DELETE', '/__sandbox/apps/app_new', undefined, {})).status).toBe(204);
    expectError(await patch(KNOWN, { profile: { a: 'b' } }, 'app_new'), 404, 'app_not_found');
    expect((await call('POST', '/__sandbox/reset', undefined, {})).status).toBe(204);
    expect((await call('GET', '/__sandbox/apps', undefined, {})).body).toEqual({
      app_sandbox: { sessionEnabled: true, known: [], unknown: [], profiles: {} },
    });
  });

  it('404 user_not_found for a user in the unknown share, until made known; a known user can be removed', async () => {
    expectError(await patch(UNKNOWN, { profile: { a: 'b' } }), 404, 'user_not_found');
    expect((await call('GET', `/__sandbox/users/${UNKNOWN}`, undefined, {})).body.known).toBe(false);
    expect((await call('PUT', `/__sandbox/users/${UNKNOWN}`, undefined, {})).status).toBe(204);
    expect((await patch(UNKNOWN, { profile: { a: 'b' } })).status).toBe(204);
    expect((await call('DELETE', `/__sandbox/users/${KNOWN}`, undefined, {})).status).toBe(204);
    expectError(await patch(KNOWN, { profile: { a: 'b' } }), 404, 'user_not_found');
  });

  it("knows only the users a custom rule knows (e.g. the source's users)", async () => {
    await start({ isKnownUser: (id) => id === 'src-1' });
    expect((await patch('src-1', { profile: { a: 'b' } })).status).toBe(204);
    expectError(await patch('src-2', { profile: { a: 'b' } }), 404, 'user_not_found');
  });

  it('about 10% of user ids are unknown by default', async () => {
    let unknown = 0;
    for (const id of ids) {
      const a = await patch(id, { profile: { a: 'b' } });
      if (a.status === 404) unknown++;
      else expect(a.status).toBe(204);
    }
    expect(unknown).toBeGreaterThan(ids.length * 0.04);
    expect(unknown).toBeLessThan(ids.length * 0.2);
  });

  it('429 with Retry-After when the rate limit is spent; injected 5xx, unknown routes and methods keep the shape', async () => {
    sim!.setRateLimit({ perMinute: 60, burst: 1 });
    expect((await patch(KNOWN, { profile: {} })).status).toBe(204);
    const limited = await patch(KNOWN, { profile: {} });
    expectError(limited, 429, 'too_many_requests');
    expect(limited.headers['retry-after']).toBe('1');
    sim!.setRateLimit(null);
    for (const [status, code] of [
      [500, 'internal_error'],
      [502, 'bad_gateway'],
      [503, 'service_unavailable'],
    ] as const) {
      sim!.setFaults([{ kind: 'status', status, times: 1 }]);
      expectError(await patch(KNOWN, { profile: {} }), status, code);
    }
    // Not the documented operation, so not held to its 404 oneOf (which only names app and user).
    expectError(await call('GET', '/v2/nothing'), 404, 'not_found', false);
    expectError(
      await call('GET', `/v2/session/apps/app_sandbox/users/${KNOWN}/profile`),
      405,
      'method_not_allowed',
    );
  });
});

describe('Prelude simulator: accepted and refused bodies agree with PatchUserProfileRequest', () => {
  const bodies: unknown[] = [
    { profile: {} },
    { profile: { first_name: 'Jane', last_name: 'Smith' } },
    { profile: { first_name: '' } },
    { profile: { a: 'b' }, other: [1] },
    { profile: { sub: 'reserved but a string' } },
    {},
    { profile: null },
    { profile: [] },
    { profile: { a: 1 } },
    { profile: { a: ['b'] } },
    { profile: { a: { b: 'c' } } },
    [],
    'str',
    0,
    null,
  ];
  for (const body of bodies) {
    it(JSON.stringify(body), async () => {
      const a = await patch(KNOWN, body);
      if (validateRequest(body)) {
        // Valid by the schema: accepted, or refused only for a reserved key (which the schema cannot express).
        if (a.status !== 204) expectError(a, 400, 'reserved_profile_key');
      } else {
        expectError(a, 400, 'invalid_request');
      }
    });
  }
});
