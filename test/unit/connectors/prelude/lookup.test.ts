import { describe, expect, it } from 'vitest';
import type { PreludeConfig } from '../../../../src/config/schema.js';
import { createPreludeConnector } from '../../../../src/connectors/prelude/target.js';
import type { ConnectorMapping } from '../../../../src/connectors/target-common.js';
import type { SyncError } from '../../../../src/core/errors.js';
import type { FieldMap, SourceUser } from '../../../../src/core/types.js';
import { createLogger } from '../../../../src/log.js';
import { type Recorded, type Reply, recordingAgent } from '../../../helpers/recording-agent.js';

/**
 * Issue 10: linking source users to Prelude's own users. Request shapes from the facts file
 * (../shared/seeds/prelude-users-api.md): batch_lookup with at most 100 entries per list, create user.
 */
const ORIGIN = 'https://api.prelude.test';
const API_KEY = 'prelude-key-abcdef';
const http = { connectTimeoutMs: 1000, headersTimeoutMs: 1000, bodyTimeoutMs: 1000, connections: 1 };
const logger = createLogger({ level: 'silent' });
const LOOKUP = '/v2/session/apps/app_1/users/batch_lookup';

const mapping: ConnectorMapping = {
  fields: ['first_name', 'email'],
  map(u: SourceUser): FieldMap {
    const out: FieldMap = {};
    if (u.firstName != null) out.first_name = u.firstName;
    if (u.email != null) out.email = u.email;
    return out;
  },
};

function setup(respond: (req: Recorded, i: number) => Reply, over: Partial<PreludeConfig> = {}) {
  const { agent, requests } = recordingAgent(ORIGIN, respond);
  let throttled = 0;
  const config: PreludeConfig = {
    url: ORIGIN,
    appId: 'app_1',
    apiKey: API_KEY,
    userIdTemplate: '{id}',
    linkBy: 'external_id',
    createUsers: false,
    rateLimit: 120,
    onDelete: 'ignore',
    ...over,
  };
  const connector = createPreludeConnector(
    { config, http, mapping, rateLimit: 120 },
    {
      logger,
      dispatcher: agent,
      throttle: async () => {
        throttled++;
      },
    },
  );
  return { connector, linker: connector.linker!, requests, throttled: () => throttled };
}

const users = (n: number): SourceUser[] =>
  Array.from({ length: n }, (_, i) => ({ id: `u${i}`, firstName: `F${i}`, email: `User${i}@Example.com ` }));

/** Prelude knows the asked external ids that are even-numbered. */
function knowsEven(req: Recorded): Reply {
  const ids = (req.body as { external_ids?: string[] }).external_ids ?? [];
  return {
    status: 200,
    body: {
      users: ids
        .filter((id) => Number(id.slice(1)) % 2 === 0)
        .map((id) => ({ id: `usr_${id}`, status: 'active', identifiers: [], external_id: id })),
    },
  };
}

describe('prelude batch_lookup (issue 10.2)', () => {
  it('101 users -> 2 lookups of 100 and 1, through the throttle, bearer key, exact body', async () => {
    const { linker, requests, throttled } = setup(knowsEven);
    const result = await linker.lookup(users(101));
    expect(requests.map((r) => `${r.method} ${r.path}`)).toEqual([`POST ${LOOKUP}`, `POST ${LOOKUP}`]);
    expect(requests[0]!.headers.authorization).toBe(`Bearer ${API_KEY}`);
    expect(requests[0]!.headers['content-type']).toMatch(/application\/json/);
    expect(requests[0]!.body).toEqual({ external_ids: users(100).map((u) => u.id) });
    expect(requests[1]!.body).toEqual({ external_ids: ['u100'] });
    expect(throttled()).toBe(2);
    expect(result.lookups).toBe(2);
    expect(result.requests).toHaveLength(2);
    expect(result.found).toHaveLength(51);
    expect(result.found[0]).toEqual({ sourceId: 'u0', preludeUserId: 'usr_u0', how: 'external_id' });
  });

  it('external_id,email: both lists in ONE request per 100 users; email matches only free Prelude users', async () => {
    const { linker, requests } = setup(
      () => ({
        status: 200,
        body: {
          users: [
            { id: 'usr_a', identifiers: [{ value: 'a@x.io' }], external_id: 'a' },
            { id: 'usr_b', identifiers: [{ value: 'B@x.io' }] }, // no external_id: linkable by email
            { id: 'usr_c', identifiers: [{ value: 'c@x.io' }], external_id: 'someone-else' }, // not ours
            { id: 'usr_d1', identifiers: [{ value: 'd@x.io' }] }, // two users, one address: ambiguous
            { id: 'usr_d2', identifiers: [{ value: 'd@x.io' }] },
          ],
        },
      }),
      { linkBy: 'external_id,email' },
    );
    const batch: SourceUser[] = [
      { id: 'a', email: 'a@x.io' },
      { id: 'b', email: ' b@X.io' },
      { id: 'c', email: 'c@x.io' },
      { id: 'd', email: 'd@x.io' },
      { id: 'e' },
    ];
    const result = await linker.lookup(batch);
    expect(requests).toHaveLength(1);
    expect(requests[0]!.body).toEqual({
      external_ids: ['a', 'b', 'c', 'd', 'e'],
      emails: ['a@x.io', 'b@x.io', 'c@x.io', 'd@x.io'],
    });
    expect(result.found).toEqual([
      { sourceId: 'a', preludeUserId: 'usr_a', how: 'external_id' },
      { sourceId: 'b', preludeUserId: 'usr_b', how: 'email' },
    ]);
  });

  it('email mode sends only emails, and nothing at all for users without one', async () => {
    const { linker, requests } = setup(() => ({ status: 200, body: { users: [] } }), { linkBy: 'email' });
    expect((await linker.lookup([{ id: 'x' }])).lookups).toBe(0);
    await linker.lookup([{ id: 'y', email: 'Y@x.io' }]);
    expect(requests.map((r) => r.body)).toEqual([{ emails: ['y@x.io'] }]);
  });

  it('template and table modes never look up', async () => {
    for (const linkBy of ['template', 'table'] as const) {
      const { linker, requests } = setup(knowsEven, { linkBy });
      expect(linker.looksUp).toBe(false);
      expect((await linker.lookup(users(3))).found).toEqual([]);
      expect(requests).toHaveLength(0);
    }
  });

  it('a 400 invalid_request is permanent; a 200 that is not {"users": [...]} is transient', async () => {
    const bad = setup(() => ({
      status: 400,
      body: { code: 'invalid_request', status: 'bad_request', message: 'too many' },
    }));
    await expect(bad.linker.lookup(users(1))).rejects.toMatchObject({ errorClass: 'permanent' });
    const html = setup(() => ({ status: 200, body: ['not', 'users'] }));
    const err = (await html.linker.lookup(users(1)).catch((e) => e)) as SyncError;
    expect(err.errorClass).toBe('transient');
  });
});

describe('prelude writes without a link (issue 10.1)', () => {
  it('no PATCH before the link is known: write -> unlinked, remove -> absent, no request', async () => {
    const { connector, requests } = setup(() => ({ status: 204 }));
    const user = { id: 'u1', firstName: 'A' };
    const w = await connector.write({ userId: 'u1', user, previous: null, next: { first_name: 'A' } });
    expect(w).toEqual({ outcome: 'unlinked', diff: {}, requests: [] });
    expect((await connector.remove(user, { first_name: 'A' })).action).toBe('absent');
    expect(requests).toHaveLength(0);
    await connector.write({
      userId: 'u1',
      user,
      previous: null,
      next: { first_name: 'A' },
      linkedId: 'usr_1',
    });
    expect(requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      'PATCH /v2/session/apps/app_1/users/usr_1/profile',
    ]);
  });

  it('plan without a link: the lookup, then the PATCH at the id it finds', () => {
    const { connector } = setup(() => ({ status: 204 }));
    const plan = connector.plan({
      userId: 'u1',
      user: { id: 'u1' },
      previous: null,
      next: { first_name: 'A' },
    });
    expect(plan.map((p) => p.method)).toEqual(['POST', 'PATCH']);
    expect(plan[0]!.body).toEqual({ external_ids: ['u1'] });
  });
});

describe('prelude create user (issue 10.3)', () => {
  it('POST .../users with the email identifier, external_id and the mapped profile; returns the usr_ id', async () => {
    const { linker, requests } = setup(() => ({ status: 201, body: { id: 'usr_new' } }), {
      createUsers: true,
    });
    const user = { id: 'u7', firstName: 'Zoë', email: ' Zoe@Example.com' };
    const made = await linker.create(user, mapping.map(user));
    expect(made.preludeUserId).toBe('usr_new');
    expect(requests).toHaveLength(1);
    expect(requests[0]!.method).toBe('POST');
    expect(requests[0]!.path).toBe('/v2/session/apps/app_1/users');
    expect(requests[0]!.body).toEqual({
      identifiers: [{ type: 'email_address', value: 'zoe@example.com' }],
      external_id: 'u7',
      profile: { first_name: 'Zoë', email: ' Zoe@Example.com' },
    });
  });

  it("409 conflict (the address is already a Prelude user's login): not created, no error", async () => {
    const { linker, requests } = setup(
      () => ({ status: 409, body: { code: 'conflict', status: 'conflict', message: 'identifier taken' } }),
      { createUsers: true },
    );
    expect((await linker.create({ id: 'u9', email: 'a@b.io' }, {})).preludeUserId).toBeUndefined();
    expect(requests).toHaveLength(1);
  });

  it('a user without an email is not created (no identifier to log in with)', async () => {
    const { linker, requests } = setup(() => ({ status: 201, body: { id: 'usr_new' } }), {
      createUsers: true,
    });
    expect((await linker.create({ id: 'u8' }, {})).preludeUserId).toBeUndefined();
    expect(requests).toHaveLength(0);
  });
});
