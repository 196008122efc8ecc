import { decodeProtectedHeader, exportPKCS8, generateKeyPair, jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import type { ZephrConfig } from '../../../../src/config/schema.js';
import type { ConnectorMapping } from '../../../../src/connectors/target-common.js';
import { createZephrConnector } from '../../../../src/connectors/zephr/target.js';
import { ConfigError } from '../../../../src/core/config-error.js';
import type { SyncError } from '../../../../src/core/errors.js';
import type { Change, FieldMap, SourceUser } from '../../../../src/core/types.js';
import { createLogger } from '../../../../src/log.js';
import { type Recorded, type Reply, recordingAgent } from '../../../helpers/recording-agent.js';

const ORIGIN = 'https://acme.zephr.test';
const SECRET = 'zephr-test-secret-0123456789';
const http = { connectTimeoutMs: 1000, headersTimeoutMs: 1000, bodyTimeoutMs: 1000, connections: 1 };
const logger = createLogger({ level: 'silent' });

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

/** Merge mode unless told: the suites below pin the GET + PUT guarantees (owned mode has its own suite). */
function zephrConfig(
  jwt: Partial<ZephrConfig['jwt']> = {},
  writeMode: ZephrConfig['writeMode'] = 'merge',
): ZephrConfig {
  return {
    url: ORIGIN,
    appId: 'profile sync/app',
    jwt: { subjectClaim: 'sub', header: 'authorization', ttlSeconds: 300, ...jwt },
    rateLimit: 120,
    onDelete: 'ignore',
    writeMode,
  };
}

function setup(
  respond: (req: Recorded, i: number) => Reply,
  jwt: Partial<ZephrConfig['jwt']> = { secret: SECRET },
  writeMode: ZephrConfig['writeMode'] = 'merge',
) {
  const { agent, requests } = recordingAgent(ORIGIN, respond);
  const connector = createZephrConnector(
    { config: zephrConfig(jwt, writeMode), http, mapping, rateLimit: 120 },
    { logger, dispatcher: agent },
  );
  return { connector, requests };
}

const PATH = '/blaize/profile/profile%20sync%2Fapp';
const jane: SourceUser = { id: 'u:1/é', firstName: 'Jane', lastName: 'Doe', email: 'jane@example.com' };
const change = (user: SourceUser, previous: FieldMap | null): Change => ({
  userId: user.id,
  user,
  previous,
  next: mapping.map(user),
});
const ok: Reply = { status: 200, body: { message: 'User extended profile updated' } };
const none: Reply = { status: 404, body: { message: 'not found' } };

function bearer(req: Recorded): string {
  const h = req.headers.authorization ?? '';
  expect(h.startsWith('Bearer ')).toBe(true);
  return h.slice('Bearer '.length);
}

describe('zephr connector: JWT per user (jose)', () => {
  it('HS256 with the shared secret: sub = source user id, iat, exp = iat + ttl', async () => {
    const { connector, requests } = setup((r) => (r.method === 'GET' ? none : ok));
    await connector.write(change(jane, null));
    const token = bearer(requests[0]!);
    const { payload, protectedHeader } = await jwtVerify(token, new TextEncoder().encode(SECRET), {
      algorithms: ['HS256'],
    });
    expect(protectedHeader.alg).toBe('HS256');
    expect(payload.sub).toBe('u:1/é');
    expect(typeof payload.iat).toBe('number');
    expect(payload.exp! - payload.iat!).toBe(300);
    expect(Math.abs(payload.iat! - Date.now() / 1000)).toBeLessThan(60);
  });

  it.each(['RS256', 'ES256'] as const)('%s chosen by the PEM key type, kid = keyId', async (alg) => {
    const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
    const pem = await exportPKCS8(privateKey);
    const { connector, requests } = setup((r) => (r.method === 'GET' ? none : ok), {
      privateKey: pem,
      keyId: 'kid-7',
      ttlSeconds: 120,
    });
    await connector.write(change(jane, null));
    const token = bearer(requests[1]!);
    expect(decodeProtectedHeader(token)).toMatchObject({ alg, kid: 'kid-7' });
    const { payload } = await jwtVerify(token, publicKey, { algorithms: [alg] });
    expect(payload.sub).toBe('u:1/é');
    expect(payload.exp! - payload.iat!).toBe(120);
  });

  it('a PEM pasted on one line with literal \\n works', async () => {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const oneLine = (await exportPKCS8(privateKey)).replace(/\n/g, '\\n');
    const { connector } = setup(() => none, { privateKey: oneLine });
    await expect(connector.read(jane)).resolves.toBeNull();
  });

  it('X-Zephr-JWT header and a custom subject claim when configured', async () => {
    const { connector, requests } = setup(() => none, {
      secret: SECRET,
      header: 'x-zephr-jwt',
      subjectClaim: 'user_id',
    });
    await connector.read(jane);
    expect(requests[0]!.headers.authorization).toBeUndefined();
    const { payload } = await jwtVerify(
      requests[0]!.headers['x-zephr-jwt']!,
      new TextEncoder().encode(SECRET),
    );
    expect(payload.user_id).toBe('u:1/é');
    expect(payload.sub).toBeUndefined();
  });

  it('an unusable key is a ConfigError that quotes no key material', async () => {
    expect(() =>
      setup(() => none, { privateKey: '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----' }),
    ).toThrow(ConfigError);
    const { privateKey } = await generateKeyPair('ES384', { extractable: true });
    const p384 = await exportPKCS8(privateKey);
    expect(() => setup(() => none, { privateKey: p384 })).toThrow(/EC secp384r1 key cannot sign/);
  });
});

describe('zephr connector: writes never touch keys profile-sync does not own', () => {
  it('create: GET 404 then PUT the managed fields -> created', async () => {
    const { connector, requests } = setup((r) => (r.method === 'GET' ? none : ok));
    const result = await connector.write(change(jane, null));
    expect(result.outcome).toBe('created');
    expect(requests.map((r) => `${r.method} ${r.path}`)).toEqual([`GET ${PATH}`, `PUT ${PATH}`]);
    expect(requests[1]!.body).toEqual({ first_name: 'Jane', last_name: 'Doe', email: 'jane@example.com' });
    expect(connector.plan(change(jane, null)).map((p) => [p.method, p.path, p.body])).toEqual([
      ['GET', PATH, undefined],
      ['PUT', PATH, { first_name: 'Jane', last_name: 'Doe', email: 'jane@example.com' }],
    ]);
  });

  it('update: PUT = current minus managed keys + next; a removed field goes, foreign keys stay', async () => {
    const current = {
      first_name: 'Jane',
      last_name: 'Doe',
      email: 'jane@example.com',
      consent_prefs: { email: false, sms: true },
      interests: ['Reading'],
    };
    const { connector, requests } = setup((r) => (r.method === 'GET' ? { status: 200, body: current } : ok));
    const prev = mapping.map(jane);
    const result = await connector.write(change({ ...jane, firstName: 'Janet', lastName: null }, prev));
    expect(result.outcome).toBe('updated');
    expect(requests[1]!.body).toEqual({
      consent_prefs: { email: false, sms: true },
      interests: ['Reading'],
      first_name: 'Janet',
      email: 'jane@example.com',
    });
    expect(result.diff).toEqual({ first_name: { from: 'Jane', to: 'Janet' }, last_name: { from: 'Doe' } });
  });

  it('unchanged with previous: no request; without previous but already right: GET only', async () => {
    const a = setup(() => ok);
    expect(await a.connector.write(change(jane, mapping.map(jane)))).toEqual({
      outcome: 'unchanged',
      diff: {},
      requests: [],
    });
    expect(a.requests).toHaveLength(0);
    const b = setup(() => ({ status: 200, body: { ...mapping.map(jane), theme: 'dark' } }));
    expect((await b.connector.write(change(jane, null))).outcome).toBe('unchanged');
    expect(b.requests.map((r) => r.method)).toEqual(['GET']);
  });

  it('an extended profile that is a JSON array is not overwritten: permanent error', async () => {
    const { connector, requests } = setup(() => ({ status: 200, body: ['a', 'b'] }));
    const err = (await connector.write(change(jane, null)).catch((e: unknown) => e)) as SyncError;
    expect(err.errorClass).toBe('permanent');
    expect(requests).toHaveLength(1);
  });

  it('read() returns the managed scalar keys; remove() PUTs the document without them (cleared)', async () => {
    const doc = { first_name: 'Jane', email: 'jane@example.com', theme: 'dark' };
    const { connector, requests } = setup((r) => (r.method === 'GET' ? { status: 200, body: doc } : ok));
    expect(await connector.read(jane)).toEqual({ first_name: 'Jane', email: 'jane@example.com' });
    const removed = await connector.remove(jane, mapping.map(jane));
    expect(removed).toMatchObject({ outcome: 'removed', action: 'cleared' });
    expect(requests.at(-1)!.body).toEqual({ theme: 'dark' });
  });

  it('remove() of a document holding only managed keys PUTs {}', async () => {
    const { connector, requests } = setup((r) =>
      r.method === 'GET' ? { status: 200, body: { first_name: 'Jane' } } : ok,
    );
    await connector.remove(jane, null);
    expect(requests[1]).toMatchObject({ method: 'PUT', path: PATH, body: {} });
  });

  it('check(): 404 for the synthetic subject is fine; 401 is auth; 400 is permanent', async () => {
    await expect(setup(() => none).connector.check()).resolves.toBeUndefined();
    const denied = (await setup(() => ({ status: 401, body: {} }))
      .connector.check()
      .catch((e: unknown) => e)) as SyncError;
    expect(denied.errorClass).toBe('auth');
    const bad = (await setup((r) => (r.method === 'GET' ? none : { status: 400, body: {} }))
      .connector.write(change(jane, null))
      .catch((e: unknown) => e)) as SyncError;
    expect(bad.errorClass).toBe('permanent');
    expect(bad.message).not.toContain(SECRET);
  });
});

describe('zephr connector: path and unreadable reads (issue 8.2, 8.9)', () => {
  it('ZEPHR_APP_ID . or .. is a ConfigError naming the variable', () => {
    for (const appId of ['.', '..']) {
      expect(() =>
        createZephrConnector(
          { config: { ...zephrConfig({ secret: SECRET }), appId }, http, mapping, rateLimit: 120 },
          { logger },
        ),
      ).toThrow(/^ZEPHR_APP_ID is '\.{1,2}'/);
    }
  });

  it('a GET 200 with an empty body fails transient, no PUT (it used to read as {} and wipe the document)', async () => {
    const { connector, requests } = setup(() => ({ status: 200 }));
    const err = (await connector.write(change(jane, null)).catch((e: unknown) => e)) as SyncError;
    expect(err.errorClass).toBe('transient');
    expect(err.message).toContain('empty or not JSON');
    expect(requests.map((r) => r.method)).toEqual(['GET']);
    const removed = (await connector.remove(jane, null).catch((e: unknown) => e)) as SyncError;
    expect(removed.errorClass).toBe('transient');
    expect(requests.map((r) => r.method)).toEqual(['GET', 'GET']);
  });
});

describe('zephr connector: ZEPHR_WRITE_MODE=owned (issue 11.1)', () => {
  const owned = (respond: (req: Recorded, i: number) => Reply) => setup(respond, { secret: SECRET }, 'owned');

  it('create is ONE PUT of the managed fields, nothing read -> created', async () => {
    const { connector, requests } = owned(() => ok);
    const c = change(jane, null);
    expect(connector.plan(c).map((p) => p.method)).toEqual(['PUT']);
    const result = await connector.write(c);
    expect(result.outcome).toBe('created');
    expect(requests.map((r) => `${r.method} ${r.path}`)).toEqual([`PUT ${PATH}`]);
    expect(requests[0]!.body).toEqual({
      first_name: 'Jane',
      last_name: 'Doe',
      email: 'jane@example.com',
    });
    expect(result.requests).toHaveLength(1);
  });

  it('update is ONE PUT of the whole document (a removed field goes); unchanged sends nothing', async () => {
    const { connector, requests } = owned(() => ok);
    const moved: SourceUser = { id: jane.id, firstName: 'Janet', email: 'janet@example.com' };
    const result = await connector.write(change(moved, mapping.map(jane)));
    expect(result.outcome).toBe('updated');
    expect(requests.map((r) => r.method)).toEqual(['PUT']);
    expect(requests[0]!.body).toEqual({ first_name: 'Janet', email: 'janet@example.com' });
    expect(await connector.write(change(jane, mapping.map(jane)))).toEqual({
      outcome: 'unchanged',
      diff: {},
      requests: [],
    });
    expect(requests).toHaveLength(1);
  });

  it('remove with a previous write: ONE PUT {} (cleared); without one: GET first, 404 -> absent', async () => {
    const a = owned(() => ok);
    const removed = await a.connector.remove(jane, mapping.map(jane));
    expect(removed).toMatchObject({ outcome: 'removed', action: 'cleared' });
    expect(a.requests.map((r) => r.method)).toEqual(['PUT']);
    expect(a.requests[0]!.body).toEqual({});
    const b = owned(() => none);
    expect(await b.connector.remove(jane, null)).toMatchObject({ outcome: 'unchanged', action: 'absent' });
    expect(b.requests.map((r) => r.method)).toEqual(['GET']);
    const c = owned((r) => (r.method === 'GET' ? { status: 200, body: { theme: 'dark' } } : ok));
    expect(await c.connector.remove(jane, null)).toMatchObject({ outcome: 'removed', action: 'cleared' });
    expect(c.requests.map((r) => r.method)).toEqual(['GET', 'PUT']);
    expect(c.requests[1]!.body).toEqual({});
  });

  it('read() keeps the unreadable-read protection: a GET 200 with an empty body is transient', async () => {
    const { connector } = owned(() => ({ status: 200 }));
    const err = await connector.read(jane).then(
      () => undefined,
      (e: unknown) => e as SyncError,
    );
    expect(err?.errorClass).toBe('transient');
  });
});
