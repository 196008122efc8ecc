import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { PreludeConfig } from '../../../../src/config/schema.js';
import { createPreludeConnector } from '../../../../src/connectors/prelude/target.js';
import type { ConnectorMapping } from '../../../../src/connectors/target-common.js';
import { ConfigError } from '../../../../src/core/config-error.js';
import { RejectedRecordError, type SyncError } from '../../../../src/core/errors.js';
import type { Change, FieldMap, SourceUser } from '../../../../src/core/types.js';
import { createLogger } from '../../../../src/log.js';
import { type Recorded, type Reply, recordingAgent } from '../../../helpers/recording-agent.js';
import { PRELUDE_OPENAPI_PATH } from '../../../helpers/seeds.js';

const ORIGIN = 'https://api.prelude.test';
const API_KEY = 'prelude-key-abcdef';
const http = { connectTimeoutMs: 1000, headersTimeoutMs: 1000, bodyTimeoutMs: 1000, connections: 1 };
const logger = createLogger({ level: 'silent' });

// The request schema straight from seed 004's OpenAPI document.
const openapi = parse(readFileSync(PRELUDE_OPENAPI_PATH, 'utf8')) as {
  components: { schemas: Record<string, object> };
};
const ajv = new Ajv({ strict: false });
const validatePatch = ajv.compile(openapi.components.schemas.PatchUserProfileRequest!);
function expectValidBody(body: unknown) {
  expect(validatePatch(body), JSON.stringify(validatePatch.errors)).toBe(true);
}

const mapping: ConnectorMapping = {
  fields: ['first_name', 'last_name', 'email'],
  map(u: SourceUser): FieldMap {
    const out: FieldMap = {};
    if (u.firstName != null) out.first_name = u.firstName;
    if (u.lastName != null) out.last_name = u.lastName;
    if (u.email != null) out.email = u.email;
    return out;
  },
};

function setup(respond: (req: Recorded, i: number) => Reply, over: Partial<PreludeConfig> = {}) {
  const { agent, requests } = recordingAgent(ORIGIN, respond);
  const config: PreludeConfig = {
    url: ORIGIN,
    appId: 'app_1',
    apiKey: API_KEY,
    userIdTemplate: '{id}',
    // Today's behaviour (issue 10: PRELUDE_LINK_BY=template); linking is tested in lookup.test.ts.
    linkBy: 'template',
    createUsers: false,
    rateLimit: 120,
    onDelete: 'ignore',
    ...over,
  };
  const connector = createPreludeConnector(
    { config, http, mapping, rateLimit: 120 },
    { logger, dispatcher: agent },
  );
  return { connector, requests };
}

const jane: SourceUser = { id: 'u 1/ü+%', firstName: 'Jane', lastName: 'Doe', email: 'jane@example.com' };
const change = (user: SourceUser, previous: FieldMap | null, linkedId?: string): Change => ({
  userId: user.id,
  user,
  previous,
  next: mapping.map(user),
  linkedId,
});
const noContent: Reply = { status: 204 };
const err = (status: number, code: string, s: string): Reply => ({
  status,
  body: { code, status: s, message: 'x' },
});

describe('prelude connector: request shape (seed 004)', () => {
  it('the OpenAPI validator used below does reject non-string values and a missing profile', () => {
    expect(validatePatch({ profile: { age: 3 } })).toBe(false);
    expect(validatePatch({ first_name: 'x' })).toBe(false);
  });

  it('create: one PATCH with bearer key, percent-encoded userID, body valid against the OpenAPI -> created', async () => {
    const { connector, requests } = setup(() => noContent);
    const result = await connector.write(change(jane, null));
    expect(result.outcome).toBe('created');
    expect(requests).toHaveLength(1);
    const [req] = requests;
    expect(req!.method).toBe('PATCH');
    expect(req!.path).toBe('/v2/session/apps/app_1/users/u%201%2F%C3%BC%2B%25/profile');
    expect(req!.headers.authorization).toBe(`Bearer ${API_KEY}`);
    expect(req!.headers['content-type']).toBe('application/json');
    expect(req!.body).toEqual({
      profile: { first_name: 'Jane', last_name: 'Doe', email: 'jane@example.com' },
    });
    expectValidBody(req!.body);
    expect(connector.plan(change(jane, null))).toEqual([
      expect.objectContaining({ method: 'PATCH', path: req!.path, body: req!.body }),
    ]);
  });

  it('update: only changed keys; a disappeared key is sent as "" (PATCH merges) -> updated', async () => {
    const { connector, requests } = setup(() => noContent);
    const result = await connector.write(
      change({ ...jane, firstName: 'Janet', lastName: null }, mapping.map(jane)),
    );
    expect(result.outcome).toBe('updated');
    expect(requests[0]!.body).toEqual({ profile: { first_name: 'Janet', last_name: '' } });
    expectValidBody(requests[0]!.body);
  });

  it('unchanged: nothing sent, plan empty', async () => {
    const { connector, requests } = setup(() => noContent);
    expect((await connector.write(change(jane, mapping.map(jane)))).outcome).toBe('unchanged');
    expect(connector.plan(change(jane, mapping.map(jane)))).toEqual([]);
    expect(requests).toHaveLength(0);
  });

  it('userID from the link table wins over the template; the template replaces {id}', async () => {
    const linked = setup(() => noContent, { userIdTemplate: 'ext-{id}' });
    await linked.connector.write(change(jane, null, 'usr_01jqebhswje1ka1z7ahr9rfsgt'));
    expect(linked.requests[0]!.path).toBe(
      '/v2/session/apps/app_1/users/usr_01jqebhswje1ka1z7ahr9rfsgt/profile',
    );
    await linked.connector.write(change({ id: '42', firstName: 'A' }, null));
    expect(linked.requests[1]!.path).toBe('/v2/session/apps/app_1/users/ext-42/profile');
  });

  it('a template without {id} or with an unknown token is refused when the connector is built', () => {
    expect(() => setup(() => noContent, { userIdTemplate: 'usr_fixed' })).toThrow(ConfigError);
    expect(() => setup(() => noContent, { userIdTemplate: '{email}' })).toThrow(/unknown token \{email\}/);
  });
});

describe('prelude connector: answers (seed 004)', () => {
  it('404 user_not_found is the outcome unlinked, not an error, and not retried', async () => {
    const { connector, requests } = setup(() => err(404, 'user_not_found', 'not_found'));
    const result = await connector.write(change(jane, null));
    expect(result.outcome).toBe('unlinked');
    expect(requests).toHaveLength(1);
  });

  it('404 app_not_found and 403 session_disabled are auth (stop the target) with the fix in the message', async () => {
    const a = (await setup(() => err(404, 'app_not_found', 'not_found'))
      .connector.write(change(jane, null))
      .catch((e: unknown) => e)) as SyncError;
    expect(a.errorClass).toBe('auth');
    expect(a.vendorCode).toBe('app_not_found');
    expect(a.message).toContain('PRELUDE_APP_ID');
    const s = (await setup(() => err(403, 'session_disabled', 'forbidden'))
      .connector.write(change(jane, null))
      .catch((e: unknown) => e)) as SyncError;
    expect(s.errorClass).toBe('auth');
    expect(s.message).toContain('session_disabled');
    expect(s.message).not.toContain(API_KEY);
  });

  it('400 reserved_profile_key / invalid_request are permanent; 401 auth; 429 rate_limited; 503 transient', async () => {
    const cases: [Reply, string][] = [
      [err(400, 'reserved_profile_key', 'bad_request'), 'permanent'],
      [err(400, 'invalid_request', 'bad_request'), 'permanent'],
      [{ status: 401, body: {} }, 'auth'],
      [{ status: 429, headers: { 'retry-after': '3' }, body: {} }, 'rate_limited'],
      [{ status: 503, body: {} }, 'transient'],
    ];
    for (const [reply, cls] of cases) {
      const { connector, requests } = setup(() => reply);
      const e = (await connector.write(change(jane, null)).catch((x: unknown) => x)) as SyncError;
      expect(e.errorClass, JSON.stringify(reply)).toBe(cls);
      // PATCH is not idempotent: never retried at the HTTP level.
      expect(requests).toHaveLength(1);
      if (cls === 'rate_limited') expect(e.retryAfterMs).toBe(3000);
    }
  });

  it('read() (issue 10.4, --full): GET the linked user, its managed keys; "" is absent; 404 or no link: undefined', async () => {
    const user = { id: 'usr_01', status: 'active', profile: { first_name: 'Jo', last_name: '', nick: 'x' } };
    const { connector, requests } = setup(() => ({ status: 200, body: { user } }), { linkBy: 'external_id' });
    expect(await connector.read(jane, 'usr_01')).toEqual({ first_name: 'Jo' });
    expect(requests.map((r) => `${r.method} ${r.path}`)).toEqual(['GET /v2/session/apps/app_1/users/usr_01']);
    expect(await connector.read(jane)).toBeUndefined(); // no link: no request
    expect(requests).toHaveLength(1);
    const gone = setup(() => err(404, 'user_not_found', 'not_found'), { linkBy: 'external_id' });
    expect(await gone.connector.read(jane, 'usr_02')).toBeUndefined();
    const html = setup(() => ({ status: 200, body: '<html>', headers: { 'content-type': 'text/html' } }));
    await expect(html.connector.read(jane, 'usr_03')).rejects.toMatchObject({ errorClass: 'transient' });
  });

  it('remove() PATCHes every managed key to "" (cleared)', async () => {
    const { connector, requests } = setup(() => noContent);
    const r = await connector.remove(jane, { first_name: 'Jane', nickname: 'JJ' });
    expect(r).toMatchObject({ outcome: 'removed', action: 'cleared' });
    expect(requests[0]!.body).toEqual({
      profile: { email: '', first_name: '', last_name: '', nickname: '' },
    });
    expectValidBody(requests[0]!.body);
    const gone = setup(() => err(404, 'user_not_found', 'not_found'));
    expect(await gone.connector.remove(jane, null)).toMatchObject({ outcome: 'unchanged', action: 'absent' });
  });

  it('check(): an empty PATCH for a probe user; user_not_found is fine, app_not_found is auth', async () => {
    const ok = setup(() => err(404, 'user_not_found', 'not_found'));
    await expect(ok.connector.check()).resolves.toBeUndefined();
    expect(ok.requests[0]!.body).toEqual({ profile: {} });
    expectValidBody(ok.requests[0]!.body);
    const bad = setup(() => err(404, 'app_not_found', 'not_found'));
    await expect(bad.connector.check()).rejects.toMatchObject({ errorClass: 'auth' });
  });
});

describe('prelude connector: ids that would change the path (issue 8.9)', () => {
  for (const [label, user, linkedId, over] of [
    ['source id .. with the default template', { id: '..', firstName: 'A' }, undefined, {}],
    ['source id . with the default template', { id: '.', firstName: 'A' }, undefined, {}],
    ['a link-table entry ..', { id: 'u-1', firstName: 'A' }, '..', {}],
    ['a link-table entry .', { id: 'u-1', firstName: 'A' }, '.', {}],
  ] as const) {
    it(`${label}: write, plan and remove refuse it as rejected, nothing is sent`, async () => {
      const { connector, requests } = setup(() => ({ status: 204 }), over);
      const c = change(user, null, linkedId);
      const err = await connector.write(c).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RejectedRecordError);
      expect((err as RejectedRecordError).userId).toBe(user.id);
      expect((err as RejectedRecordError).reason).toMatch(/cannot be sent as a path segment/);
      expect(() => connector.plan(c)).toThrow(RejectedRecordError);
      await expect(connector.remove(user, { first_name: 'A' }, linkedId)).rejects.toBeInstanceOf(
        RejectedRecordError,
      );
      expect(requests).toEqual([]);
    });
  }

  it("ids that merely contain dots are encoded and sent: '...', 'a..b', 'usr_.'", async () => {
    const { connector, requests } = setup(() => ({ status: 204 }), { userIdTemplate: 'usr_{id}' });
    await connector.write(change({ id: '.', firstName: 'A' }, null));
    await connector.write(change({ id: 'x', firstName: 'A' }, null, '...'));
    expect(requests.map((r) => r.path)).toEqual([
      '/v2/session/apps/app_1/users/usr_./profile',
      '/v2/session/apps/app_1/users/.../profile',
    ]);
  });

  it('PRELUDE_APP_ID . or .. is a ConfigError naming the variable', () => {
    expect(() => setup(() => ({ status: 204 }), { appId: '..' })).toThrow(/^PRELUDE_APP_ID/);
    expect(() => setup(() => ({ status: 204 }), { appId: '.' })).toThrow(ConfigError);
  });
});
