import { exportJWK, generateKeyPair, type JWTPayload, SignJWT } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Sandbox, startSandbox } from '../../../src/sandbox/index.js';
import { call } from './http.js';

let sb: Sandbox;
let secret: Uint8Array;
type PrivateKey = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
let rsa: PrivateKey;
let ec: PrivateKey;
let otherRsa: PrivateKey;

const now = () => Math.floor(Date.now() / 1000);
const UPDATED = { message: 'User extended profile updated' };

async function hs256(claims: JWTPayload, key: Uint8Array = secret): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(key);
}
const token = (sub: string) => hs256({ sub, exp: now() + 300 });
const bearer = async (sub: string) => ({ authorization: `Bearer ${await token(sub)}` });
const put = (appId: string, json: unknown, headers: Record<string, string>, query = '') =>
  call(sb.urls.zephr, 'PUT', `/blaize/profile/${encodeURIComponent(appId)}${query}`, { headers, json });
const get = (appId: string, headers: Record<string, string>, query = '') =>
  call(sb.urls.zephr, 'GET', `/blaize/profile/${encodeURIComponent(appId)}${query}`, { headers });

beforeAll(async () => {
  const rsaPair = await generateKeyPair('RS256');
  const ecPair = await generateKeyPair('ES256');
  rsa = rsaPair.privateKey;
  ec = ecPair.privateKey;
  otherRsa = (await generateKeyPair('RS256')).privateKey;
  const jwks = {
    keys: [
      { ...(await exportJWK(rsaPair.publicKey)), kid: 'rsa-1', alg: 'RS256', use: 'sig' },
      { ...(await exportJWK(ecPair.publicKey)), kid: 'ec-1', alg: 'ES256', use: 'sig' },
    ],
  };
  sb = await startSandbox({ port: 0, users: 10, rateLimit: null, zephrJwks: jwks });
  secret = new TextEncoder().encode(sb.env.ZEPHR_JWT_SECRET!);
});
afterAll(() => sb.close());
beforeEach(async () => {
  expect((await call(sb.urls.zephr, 'POST', '/__sandbox/reset')).status).toBe(204);
});

describe('Zephr simulator: PUT and GET /blaize/profile/{appId}', () => {
  it('stores any JSON object and reads it back per appId and JWT subject', async () => {
    const profile = {
      first_name: 'John',
      user_details: { employment: { company: 'Zuora' } },
      interests: ['Reading'],
    };
    const alice = await bearer('alice');
    const r = await put('profile-sync', profile, alice);
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/json');
    expect(r.body).toEqual(UPDATED);
    expect(await get('profile-sync', alice)).toMatchObject({ status: 200, body: profile });
    expect((await get('profile-sync', await bearer('bob'))).status).toBe(404);
    expect((await get('other-app', alice)).status).toBe(404);
    expect(await put('profile-sync', { replaced: true }, alice)).toMatchObject({
      status: 200,
      body: UPDATED,
    });
    expect((await get('profile-sync', alice)).body).toEqual({ replaced: true });
    expect((await call(sb.urls.zephr, 'GET', '/__sandbox/profiles')).body).toEqual([
      { appId: 'profile-sync', sub: 'alice', profile: { replaced: true } },
    ]);
    expect((await call(sb.urls.zephr, 'GET', '/__sandbox/state')).body).toEqual({
      profiles: 1,
      apps: { 'profile-sync': 1 },
    });
  });

  it('stores JSON arrays of anything', async () => {
    const h = await bearer('u');
    for (const json of [['a', 1, true], [[1, 2], { a: 1 }], []]) {
      expect(await put('app', json, h)).toMatchObject({ status: 200, body: UPDATED });
      expect((await get('app', h)).body).toEqual(json);
    }
  });

  it('answers 404 with a JSON message when the user has no extended profile', async () => {
    expect(await get('profile-sync', await bearer('nobody'))).toMatchObject({
      status: 404,
      body: { message: expect.any(String) },
    });
  });

  it('answers 400 for an appId starting with _restricted', async () => {
    const h = await bearer('alice');
    for (const appId of ['_restricted', '_restricted-app', '_restrictedX']) {
      expect(await put(appId, { a: 1 }, h)).toMatchObject({
        status: 400,
        body: { message: expect.stringContaining('_restricted') },
      });
      expect((await get(appId, h)).status).toBe(400);
    }
    expect((await put('x_restricted', { a: 1 }, h)).status).toBe(200);
  });

  it('answers 400 for a body that is not a JSON object or array', async () => {
    const h = await bearer('alice');
    for (const raw of ['{"a":', 'not json', '"a string"', '42', 'null', 'true', '']) {
      const r = await call(sb.urls.zephr, 'PUT', '/blaize/profile/app', {
        headers: { ...h, 'content-type': 'application/json' },
        raw,
      });
      expect(r, JSON.stringify(raw)).toMatchObject({ status: 400, body: { message: expect.any(String) } });
    }
    expect((await get('app', h)).status).toBe(404);
  });
});

describe('Zephr simulator: JWT', () => {
  it('accepts the JWT in each documented place', async () => {
    const places: [string, (t: string) => { headers: Record<string, string>; query?: string }][] = [
      ['JwtBearer', (t) => ({ headers: { authorization: `Bearer ${t}` } })],
      ['JwtHeaderXZephrJwt', (t) => ({ headers: { 'x-zephr-jwt': t } })],
      ['JwtHeaderXBlaizeJwt', (t) => ({ headers: { 'x-blaize-jwt': t } })],
      ['JwtQuery', (t) => ({ headers: {}, query: `?jwt=${t}` })],
      ['JwtCookie', (t) => ({ headers: { cookie: `other=1; blaize_jwt=${t}` } })],
      ['CookieBlaizeSession', (t) => ({ headers: { cookie: `blaize_session=${t}` } })],
    ];
    for (const [scheme, place] of places) {
      const { headers, query } = place(await token(scheme));
      expect((await put('app', { scheme }, headers, query ?? '')).status, scheme).toBe(200);
      expect((await get('app', headers, query ?? '')).body, scheme).toEqual({ scheme });
    }
    expect(((await call(sb.urls.zephr, 'GET', '/__sandbox/profiles')).body as unknown[]).length).toBe(6);
  });

  it('answers 401 without a valid JWT', async () => {
    const exp = now() + 300;
    const cases: [string, Record<string, string>][] = [
      ['none', {}],
      ['garbage', { authorization: 'Bearer not.a.jwt' }],
      [
        'wrong secret',
        {
          authorization: `Bearer ${await hs256({ sub: 'a', exp }, new TextEncoder().encode('wrong-secret-wrong-secret'))}`,
        },
      ],
      ['expired', { authorization: `Bearer ${await hs256({ sub: 'a', exp: now() - 10 })}` }],
      ['no exp', { authorization: `Bearer ${await hs256({ sub: 'a' })}` }],
      ['no sub', { authorization: `Bearer ${await hs256({ exp })}` }],
      ['not yet valid', { authorization: `Bearer ${await hs256({ sub: 'a', exp, nbf: now() + 120 })}` }],
      [
        'alg none',
        {
          authorization: `Bearer ${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ sub: 'a', exp })).toString('base64url')}.`,
        },
      ],
      [
        'unknown RSA key',
        {
          authorization: `Bearer ${await new SignJWT({ sub: 'a', exp }).setProtectedHeader({ alg: 'RS256', kid: 'rsa-1' }).sign(otherRsa)}`,
        },
      ],
      ['basic auth', { authorization: 'Basic YTpi' }],
      // Zephr's cookie is blaize_jwt (vendor-facts.md); a hyphenated one is nobody's JWT location.
      ['cookie blaize-jwt', { cookie: `blaize-jwt=${await hs256({ sub: 'a', exp })}` }],
    ];
    for (const [name, headers] of cases) {
      const r = await put('app', { a: 1 }, headers);
      expect(r, name).toMatchObject({ status: 401, body: { message: expect.any(String) } });
      expect((await get('app', headers)).status, name).toBe(401);
    }
    expect((await call(sb.urls.zephr, 'GET', '/__sandbox/profiles')).body).toEqual([]);
  });

  it('checks 401 before 400 (a restricted appId without a JWT is a 401)', async () => {
    expect((await put('_restricted', 'x', {})).status).toBe(401);
  });

  it('verifies RS256 and ES256 tokens against the JWKS given at start', async () => {
    const exp = now() + 300;
    const rs = await new SignJWT({ sub: 'rs-user', exp })
      .setProtectedHeader({ alg: 'RS256', kid: 'rsa-1' })
      .sign(rsa);
    const es = await new SignJWT({ sub: 'es-user', exp })
      .setProtectedHeader({ alg: 'ES256', kid: 'ec-1' })
      .sign(ec);
    expect((await put('app', { k: 'rs' }, { authorization: `Bearer ${rs}` })).status).toBe(200);
    expect((await put('app', { k: 'es' }, { 'x-zephr-jwt': es })).status).toBe(200);
    expect((await call(sb.urls.zephr, 'GET', '/__sandbox/profiles/app/rs-user')).body).toEqual({ k: 'rs' });
    expect((await call(sb.urls.zephr, 'GET', '/__sandbox/profiles/app/es-user')).body).toEqual({ k: 'es' });
    const log = (await call(sb.urls.zephr, 'GET', '/__sandbox/requests')).body as { credential: string }[];
    expect(log.map((e) => e.credential)).toEqual(['jwks:rsa-1', 'jwks:ec-1']);
  });

  it('refuses RS256 tokens when no JWKS was given', async () => {
    const plain = await startSandbox({ port: 0, users: 1 });
    try {
      const rs = await new SignJWT({ sub: 'a', exp: now() + 60 })
        .setProtectedHeader({ alg: 'RS256', kid: 'rsa-1' })
        .sign(rsa);
      const r = await call(plain.urls.zephr, 'PUT', '/blaize/profile/app', {
        headers: { authorization: `Bearer ${rs}` },
        json: {},
      });
      expect(r.status).toBe(401);
    } finally {
      await plain.close();
    }
  });

  it('rate-limits per signing key with a 429 and Retry-After', async () => {
    await call(sb.urls.zephr, 'PUT', '/__sandbox/rate-limit', { json: { perMinute: 30, burst: 1 } });
    expect((await put('app', {}, await bearer('a'))).status).toBe(200);
    const r = await put('app', {}, await bearer('b'));
    expect(r).toMatchObject({ status: 429, body: { message: expect.any(String) } });
    expect(r.headers['retry-after']).toBe('2');
  });
});
