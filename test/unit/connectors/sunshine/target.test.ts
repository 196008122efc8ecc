import { describe, expect, it } from 'vitest';
import type { SunshineConfig } from '../../../../src/config/schema.js';
import { createSunshineConnector } from '../../../../src/connectors/sunshine/target.js';
import type { ConnectorMapping } from '../../../../src/connectors/target-common.js';
import { SyncError } from '../../../../src/core/errors.js';
import type { Change, FieldMap, SourceUser } from '../../../../src/core/types.js';
import { createLogger } from '../../../../src/log.js';
import { type Recorded, type Reply, recordingAgent } from '../../../helpers/recording-agent.js';

const ORIGIN = 'https://acme.zendesk.test';
const config: SunshineConfig = {
  url: ORIGIN,
  email: 'sync@acme.test',
  apiToken: 'tok-123456',
  profileSource: 'identity',
  profileType: 'user',
  plan: 'team',
  onDelete: 'ignore',
  writeMode: 'merge',
};
const http = { connectTimeoutMs: 1000, headersTimeoutMs: 1000, bodyTimeoutMs: 1000, connections: 1 };
const logger = createLogger({ level: 'silent' });

/** The default Sunshine mapping, written out (the connector only needs fields + map). */
const mapping: ConnectorMapping = {
  fields: [
    'name',
    'identifiers.external_id',
    'identifiers.email',
    'attributes.first_name',
    'attributes.last_name',
  ],
  map(u: SourceUser): FieldMap {
    const out: FieldMap = {};
    const name = `${u.firstName ?? ''} ${u.lastName ?? ''}`.trim();
    if (name) out.name = name;
    out['identifiers.external_id'] = u.id;
    if (u.email) out['identifiers.email'] = u.email.trim().toLowerCase();
    if (u.firstName != null) out['attributes.first_name'] = u.firstName;
    if (u.lastName != null) out['attributes.last_name'] = u.lastName;
    return out;
  },
};

function setup(
  respond: (req: Recorded, i: number) => Reply,
  writeMode: SunshineConfig['writeMode'] = 'merge',
) {
  const { agent, requests } = recordingAgent(ORIGIN, respond);
  const connector = createSunshineConnector(
    { config: { ...config, writeMode }, http, mapping, rateLimit: 250 },
    { logger, dispatcher: agent },
  );
  return { connector, requests };
}

const jane: SourceUser = { id: 'u1', firstName: 'Jane', lastName: 'Doe', email: 'Jane@Example.com' };
const janeFields = mapping.map(jane);
const Q = '/api/v2/user_profiles?identifier=identity%3Auser%3Aexternal_id%3Au1';
const profile = (p: Record<string, unknown>) => ({
  status: 200,
  body: { profile: { id: 'P1', source: 'identity', type: 'user', ...p } },
});
const notFound: Reply = {
  status: 404,
  body: { errors: [{ code: 'ClientError', id: '10001', title: 'not found' }] },
};

function change(user: SourceUser, previous: FieldMap | null): Change {
  return { userId: user.id, user, previous, next: mapping.map(user) };
}

describe('sunshine connector: request shape', () => {
  it('sends the identifier query as ONE percent-encoded value, with basic {email}/token:{token} auth', async () => {
    const id = 'a:b/c%d+e f✓é';
    const { connector, requests } = setup(() => notFound);
    expect(await connector.read({ id })).toBeNull();
    expect(requests[0]!.path).toBe(
      '/api/v2/user_profiles?identifier=identity%3Auser%3Aexternal_id%3Aa%3Ab%2Fc%25d%2Be%20f%E2%9C%93%C3%A9',
    );
    expect(new URL(`http://x${requests[0]!.path}`).searchParams.get('identifier')).toBe(
      `identity:user:external_id:${id}`,
    );
    expect(requests[0]!.headers.authorization).toBe(
      `Basic ${Buffer.from('sync@acme.test/token:tok-123456').toString('base64')}`,
    );
    expect(requests[0]!.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('sunshine connector: the PATCH-versus-PUT decision table (seed 001)', () => {
  it('create: GET 404 then PUT by identifier with the whole profile -> created', async () => {
    const { connector, requests } = setup((r) =>
      r.method === 'GET' ? notFound : { status: 201, body: { profile: { id: 'P1' } } },
    );
    const result = await connector.write(change(jane, null));
    expect(result.outcome).toBe('created');
    expect(requests.map((r) => `${r.method} ${r.path}`)).toEqual([`GET ${Q}`, `PUT ${Q}`]);
    expect(requests[1]!.body).toEqual({
      profile: {
        name: 'Jane Doe',
        identifiers: [
          { type: 'external_id', value: 'u1' },
          { type: 'email', value: 'jane@example.com' },
        ],
        attributes: { first_name: 'Jane', last_name: 'Doe' },
      },
    });
    expect(requests[1]!.headers['content-type']).toBe('application/json');
    expect(result.requests.map((r) => r.status)).toEqual([404, 201]);
    expect(result.diff['attributes.first_name']).toEqual({ to: 'Jane' });
  });

  it('plan() for a create lists the same requests write() sends', () => {
    const { connector } = setup(() => notFound);
    const plan = connector.plan(change(jane, null));
    expect(plan.map((p) => `${p.method} ${p.path}`)).toEqual([`GET ${Q}`, `PUT ${Q}`]);
    expect(plan[1]!.body).toEqual({
      profile: {
        name: 'Jane Doe',
        identifiers: [
          { type: 'external_id', value: 'u1' },
          { type: 'email', value: 'jane@example.com' },
        ],
        attributes: { first_name: 'Jane', last_name: 'Doe' },
      },
    });
  });

  it('never written by us but present: PUT the merge, foreign identifiers and attributes survive -> updated', async () => {
    const current = profile({
      name: 'J. D.',
      identifiers: [
        { type: 'external_id', value: 'u1' },
        { type: 'email', value: 'old@example.com' },
        { type: 'phone_number', value: '+6112345' },
      ],
      attributes: { first_name: 'J', favorite_color: 'red' },
    });
    const { connector, requests } = setup((r) => (r.method === 'GET' ? current : { status: 200, body: {} }));
    const result = await connector.write(change(jane, null));
    expect(result.outcome).toBe('updated');
    expect(requests.map((r) => r.method)).toEqual(['GET', 'PUT']);
    expect(requests[1]!.path).toBe(Q);
    expect(requests[1]!.body).toEqual({
      profile: {
        name: 'Jane Doe',
        identifiers: [
          { type: 'phone_number', value: '+6112345' },
          { type: 'external_id', value: 'u1' },
          { type: 'email', value: 'jane@example.com' },
        ],
        attributes: { favorite_color: 'red', first_name: 'Jane', last_name: 'Doe' },
      },
    });
  });

  it('a replayed create that finds the profile already right sends no PUT -> unchanged', async () => {
    const { connector, requests } = setup(() =>
      profile({
        name: 'Jane Doe',
        identifiers: [
          { type: 'email', value: 'jane@example.com' },
          { type: 'external_id', value: 'u1' },
        ],
        attributes: { last_name: 'Doe', first_name: 'Jane' },
      }),
    );
    const result = await connector.write(change(jane, null));
    expect(result.outcome).toBe('unchanged');
    expect(requests.map((r) => r.method)).toEqual(['GET']);
  });

  it('unchanged: nothing is sent', async () => {
    const { connector, requests } = setup(() => notFound);
    const result = await connector.write(change(jane, janeFields));
    expect(result).toEqual({ outcome: 'unchanged', diff: {}, requests: [] });
    expect(connector.plan(change(jane, janeFields))).toEqual([]);
    expect(requests).toHaveLength(0);
  });

  it('only name / attributes changed: one PATCH carrying only the changed fields -> updated', async () => {
    const { connector, requests } = setup(() => profile({}));
    const janet = { ...jane, firstName: 'Janet' };
    const result = await connector.write(change(janet, janeFields));
    expect(result.outcome).toBe('updated');
    expect(requests).toHaveLength(1);
    expect(requests[0]!.method).toBe('PATCH');
    expect(requests[0]!.path).toBe(Q);
    expect(requests[0]!.body).toEqual({
      profile: { name: 'Janet Doe', attributes: { first_name: 'Janet' } },
    });
    expect(result.diff).toEqual({
      'attributes.first_name': { from: 'Jane', to: 'Janet' },
      name: { from: 'Jane Doe', to: 'Janet Doe' },
    });
  });

  it('email change: GET, then PUT without the old email, foreign identifiers and attributes kept', async () => {
    const current = profile({
      name: 'Jane Doe',
      identifiers: [
        { type: 'external_id', value: 'u1' },
        { type: 'email', value: 'jane@example.com' },
        { type: 'member_id', value: 'M-77' },
      ],
      attributes: { first_name: 'Jane', last_name: 'Doe', membership: 'gold' },
    });
    const { connector, requests } = setup((r) => (r.method === 'GET' ? current : { status: 200, body: {} }));
    const moved = { ...jane, email: 'jane@new.example' };
    const result = await connector.write(change(moved, janeFields));
    expect(result.outcome).toBe('updated');
    expect(requests.map((r) => `${r.method} ${r.path}`)).toEqual([`GET ${Q}`, `PUT ${Q}`]);
    const body = requests[1]!.body as { profile: { identifiers: { type: string; value: string }[] } };
    expect(body).toEqual({
      profile: {
        name: 'Jane Doe',
        identifiers: [
          { type: 'member_id', value: 'M-77' },
          { type: 'external_id', value: 'u1' },
          { type: 'email', value: 'jane@new.example' },
        ],
        attributes: { membership: 'gold', first_name: 'Jane', last_name: 'Doe' },
      },
    });
    expect(body.profile.identifiers.some((i) => i.value === 'jane@example.com')).toBe(false);
  });

  it('a managed field disappeared from the source: GET + PUT without it (PATCH cannot remove)', async () => {
    const current = profile({
      name: 'Jane Doe',
      identifiers: [
        { type: 'external_id', value: 'u1' },
        { type: 'email', value: 'jane@example.com' },
      ],
      attributes: { first_name: 'Jane', last_name: 'Doe', favorite_color: 'red' },
    });
    const { connector, requests } = setup((r) => (r.method === 'GET' ? current : { status: 200, body: {} }));
    const noLast = { ...jane, lastName: null };
    const result = await connector.write(change(noLast, janeFields));
    expect(result.outcome).toBe('updated');
    expect(requests.map((r) => r.method)).toEqual(['GET', 'PUT']);
    expect(requests[1]!.body).toEqual({
      profile: {
        name: 'Jane',
        identifiers: [
          { type: 'external_id', value: 'u1' },
          { type: 'email', value: 'jane@example.com' },
        ],
        attributes: { favorite_color: 'red', first_name: 'Jane' },
      },
    });
    expect(result.diff['attributes.last_name']).toEqual({ from: 'Doe' });
  });

  it('a name that disappears is left out of the PUT so that Zendesk derives it (seed 003)', async () => {
    const current = profile({
      name: 'Jane Doe',
      identifiers: [{ type: 'external_id', value: 'u1' }],
      attributes: {},
    });
    const { connector, requests } = setup((r) => (r.method === 'GET' ? current : { status: 200, body: {} }));
    const nameless: SourceUser = { id: 'u1' };
    const prev: FieldMap = { name: 'Jane Doe', 'identifiers.external_id': 'u1' };
    await connector.write(change(nameless, prev));
    expect(requests[1]!.body).toEqual({
      profile: { identifiers: [{ type: 'external_id', value: 'u1' }], attributes: {} },
    });
  });

  it('PATCH 404 (deleted outside profile-sync) falls back to the create path -> created', async () => {
    const { connector, requests } = setup((r) =>
      r.method === 'PUT' ? { status: 201, body: { profile: { id: 'P2' } } } : notFound,
    );
    const janet = { ...jane, firstName: 'Janet' };
    const result = await connector.write(change(janet, janeFields));
    expect(result.outcome).toBe('created');
    expect(requests.map((r) => r.method)).toEqual(['PATCH', 'GET', 'PUT']);
    expect((requests[2]!.body as { profile: { name: string } }).profile.name).toBe('Janet Doe');
    expect(result.requests.map((r) => r.status)).toEqual([404, 404, 201]);
  });

  it('an identifier changed but the profile is gone: GET 404 -> PUT create', async () => {
    const { connector, requests } = setup((r) => (r.method === 'GET' ? notFound : { status: 201, body: {} }));
    const result = await connector.write(change({ ...jane, email: 'x@y.z' }, janeFields));
    expect(result.outcome).toBe('created');
    expect(requests.map((r) => r.method)).toEqual(['GET', 'PUT']);
  });
});

describe('sunshine connector: read, remove, check, errors', () => {
  it('read() returns only the managed fields; a derived name reads as absent', async () => {
    const { connector } = setup(() =>
      profile({
        name: 'jane@example.com',
        identifiers: [
          { type: 'email', value: 'jane@example.com' },
          { type: 'external_id', value: 'u1' },
          { type: 'phone_number', value: 12345 },
        ],
        attributes: { first_name: 'Jane', favorite_color: 'red' },
      }),
    );
    expect(await connector.read(jane)).toEqual({
      'identifiers.external_id': 'u1',
      'identifiers.email': 'jane@example.com',
      'attributes.first_name': 'Jane',
    });
  });

  it('remove(): only managed data -> DELETE by profile id (deleted)', async () => {
    const { connector, requests } = setup((r) =>
      r.method === 'GET'
        ? profile({
            id: 'P/1',
            identifiers: [{ type: 'external_id', value: 'u1' }],
            attributes: { first_name: 'Jane' },
          })
        : { status: 204 },
    );
    const result = await connector.remove(jane, janeFields);
    expect(result.action).toBe('deleted');
    expect(result.outcome).toBe('removed');
    expect(requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      `GET ${Q}`,
      'DELETE /api/v2/user_profiles/P%2F1',
    ]);
  });

  it('remove(): foreign identifiers present -> PUT by profile id without managed data (stripped)', async () => {
    const { connector, requests } = setup((r) =>
      r.method === 'GET'
        ? profile({
            name: 'Jane Doe',
            identifiers: [
              { type: 'external_id', value: 'u1' },
              { type: 'email', value: 'jane@example.com' },
              { type: 'member_id', value: 'M-77' },
            ],
            attributes: { first_name: 'Jane', membership: 'gold' },
          })
        : { status: 200, body: {} },
    );
    const result = await connector.remove(jane, janeFields);
    expect(result.action).toBe('stripped');
    expect(requests[1]!.method).toBe('PUT');
    expect(requests[1]!.path).toBe('/api/v2/user_profiles/P1');
    expect(requests[1]!.body).toEqual({
      profile: { identifiers: [{ type: 'member_id', value: 'M-77' }], attributes: { membership: 'gold' } },
    });
  });

  it('remove(): absent profile -> absent, one GET', async () => {
    const { connector, requests } = setup(() => notFound);
    expect(await connector.remove(jane, null)).toMatchObject({ outcome: 'unchanged', action: 'absent' });
    expect(requests).toHaveLength(1);
  });

  it('check(): 404 for the probe identifier is fine; 401 is auth', async () => {
    const ok = setup(() => notFound);
    await expect(ok.connector.check()).resolves.toBeUndefined();
    expect(ok.requests[0]!.path).toContain('external_id%3Aprofile-sync-connection-check');
    const denied = setup(() => ({
      status: 401,
      body: { errors: [{ code: 'Unauthorized', id: '1', title: 'x' }] },
    }));
    const err = await denied.connector.check().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SyncError);
    expect((err as SyncError).errorClass).toBe('auth');
    expect((err as SyncError).message).not.toContain('tok-123456');
  });

  it('429 -> rate_limited with Retry-After; 400 -> permanent with the vendor code', async () => {
    const limited = setup(() => ({ status: 429, headers: { 'retry-after': '7' }, body: {} }));
    const e1 = (await limited.connector.write(change(jane, null)).catch((e: unknown) => e)) as SyncError;
    expect(e1.errorClass).toBe('rate_limited');
    expect(e1.retryAfterMs).toBe(7000);
    const bad = setup((r) =>
      r.method === 'GET'
        ? notFound
        : { status: 400, body: { errors: [{ code: 'ClientError', id: '1', title: 't' }] } },
    );
    const e2 = (await bad.connector.write(change(jane, null)).catch((e: unknown) => e)) as SyncError;
    expect(e2.errorClass).toBe('permanent');
    expect(e2.vendorCode).toBe('ClientError');
    expect(e2.userId).toBe('u1');
  });
});

describe('sunshine connector: ids and bodies from the vendor are checked before use (issue 8.2, 8.9)', () => {
  it('remove(): a profile id . or .. from the GET answer is never sent as a path segment', async () => {
    for (const id of ['..', '.']) {
      const { connector, requests } = setup(() =>
        profile({ id, identifiers: [{ type: 'external_id', value: 'u1' }], attributes: {} }),
      );
      const err = (await connector.remove(jane, janeFields).catch((e: unknown) => e)) as SyncError;
      expect(err).toBeInstanceOf(SyncError);
      expect(err.errorClass).toBe('permanent');
      expect(requests.map((r) => r.method)).toEqual(['GET']);
    }
  });

  it('a GET 200 without {"profile": {...}} fails transient and no PUT follows', async () => {
    for (const body of [{ profiles: [] }, { profile: null }, ['x']]) {
      const { connector, requests } = setup(() => ({ status: 200, body }));
      const err = (await connector.write(change(jane, null)).catch((e: unknown) => e)) as SyncError;
      expect(err.errorClass).toBe('transient');
      expect(err.message).toMatch(/user u1\) answered 200 with a body that is JSON of another shape/);
      expect(requests.map((r) => r.method)).toEqual(['GET']);
    }
  });
});

describe('sunshine connector: SUNSHINE_WRITE_MODE=owned (issue 11.1)', () => {
  const created: Reply = { status: 201, body: { profile: { id: 'P1' } } };
  const replaced: Reply = { status: 200, body: { profile: { id: 'P1' } } };

  it('create is ONE PUT by identifier with the whole profile, nothing read -> created', async () => {
    const { connector, requests } = setup(() => created, 'owned');
    const c = change(jane, null);
    expect(connector.plan(c).map((p) => `${p.method} ${p.path}`)).toEqual([`PUT ${Q}`]);
    const result = await connector.write(c);
    expect(result.outcome).toBe('created');
    expect(requests.map((r) => `${r.method} ${r.path}`)).toEqual([`PUT ${Q}`]);
    expect(requests[0]!.body).toEqual({
      profile: {
        name: 'Jane Doe',
        identifiers: [
          { type: 'external_id', value: 'u1' },
          { type: 'email', value: 'jane@example.com' },
        ],
        attributes: { first_name: 'Jane', last_name: 'Doe' },
      },
    });
  });

  it('an email change is ONE PUT built from what was last written, the new email instead of the old', async () => {
    const { connector, requests } = setup(() => replaced, 'owned');
    const moved: SourceUser = { ...jane, email: 'jane@new.example' };
    const c = change(moved, janeFields);
    const planned = connector.plan(c);
    expect(planned.map((p) => p.method)).toEqual(['PUT']);
    const result = await connector.write(c);
    expect(result.outcome).toBe('updated');
    expect(result.diff).toEqual({
      'identifiers.email': { from: 'jane@example.com', to: 'jane@new.example' },
    });
    expect(requests.map((r) => `${r.method} ${r.path}`)).toEqual([`PUT ${Q}`]);
    const body = requests[0]!.body as { profile: Record<string, unknown> };
    expect(body).toEqual(planned[0]!.body);
    expect(body.profile.name).toBe('Jane Doe');
    expect(body.profile.attributes).toEqual({ first_name: 'Jane', last_name: 'Doe' });
    expect(
      (body.profile.identifiers as { type: string; value: string }[]).sort((a, b) =>
        a.type.localeCompare(b.type),
      ),
    ).toEqual([
      { type: 'email', value: 'jane@new.example' },
      { type: 'external_id', value: 'u1' },
    ]);
  });

  it('a name-only change is still one PATCH; a PATCH 404 re-creates with ONE PUT', async () => {
    const { connector, requests } = setup((r) => (r.method === 'PATCH' ? notFound : created), 'owned');
    const renamed: SourceUser = { ...jane, firstName: 'Janet' };
    const result = await connector.write(change(renamed, janeFields));
    expect(result.outcome).toBe('created');
    expect(requests.map((r) => r.method)).toEqual(['PATCH', 'PUT']);
  });

  it('merge mode (the default) still reads before the create', async () => {
    const { connector, requests } = setup((r) => (r.method === 'GET' ? notFound : created));
    await connector.write(change(jane, null));
    expect(requests.map((r) => r.method)).toEqual(['GET', 'PUT']);
  });
});
