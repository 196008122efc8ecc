import { generateKeyPairSync } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { zephrJwks } from '../../../src/connectors/zephr/jwks.js';
import { type OpsHarness, startOpsHarness } from './ops-harness.js';

/** Issue 12.6: `GET /.well-known/jwks.json` on the ops surface: public, RS256/ES256 only. */
const pem = (type: 'rsa' | 'ec') =>
  (type === 'rsa'
    ? generateKeyPairSync('rsa', { modulusLength: 2048 })
    : generateKeyPairSync('ec', { namedCurve: 'P-256' })
  ).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;

const TOKEN = 'jwks-test-dashboard-token-0123';
const harnesses: OpsHarness[] = [];
afterAll(async () => {
  await Promise.all(harnesses.map((h) => h.close()));
});

describe('ops surface: /.well-known/jwks.json', () => {
  it('serves the current and the next public key without the dashboard token, never a private member', async () => {
    const current = pem('rsa');
    const next = pem('ec');
    const h = await startOpsHarness({
      label: 'jwks',
      users: 1,
      env: {
        OPS_DASHBOARD_TOKEN: TOKEN,
        ZEPHR_JWT_SECRET: '',
        ZEPHR_JWT_PRIVATE_KEY: current,
        ZEPHR_JWT_KEY_ID: 'k-2026-11',
        ZEPHR_JWT_NEXT_PRIVATE_KEY: next,
        ZEPHR_JWT_NEXT_KEY_ID: 'k-2027-02',
      },
    });
    harnesses.push(h);
    const s = await h.server(await h.engine());
    const r = await h.get(`${s.url}/.well-known/jwks.json`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toContain('application/json');
    const body = JSON.parse(r.text) as { keys: Record<string, unknown>[] };
    expect(body.keys.map((k) => [k.kid, k.alg, k.use])).toEqual([
      ['k-2026-11', 'RS256', 'sig'],
      ['k-2027-02', 'ES256', 'sig'],
    ]);
    for (const k of body.keys)
      for (const m of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k']) expect(k).not.toHaveProperty(m);
    // The same set `profile-sync zephr jwks` prints for this configuration.
    expect(body).toEqual(await zephrJwks(h.config.targets.zephr!.jwt));
    // The dashboard still wants its token; a private key's text never appears.
    expect((await h.get(`${s.url}/api/runs`)).status).toBe(401);
    const all = h.seen.join('\n');
    expect(all).not.toContain('PRIVATE KEY');
    expect(all).not.toContain(current.split('\n')[1]!);
    expect(all).not.toContain(next.split('\n')[1]!);
  });

  it('answers 404 when Zephr uses a shared HS256 secret', async () => {
    const h = await startOpsHarness({ label: 'jwks-hs', users: 1 });
    harnesses.push(h);
    expect(h.config.targets.zephr!.jwt.secret).toBeTruthy();
    const s = await h.server(await h.engine());
    const r = await h.get(`${s.url}/.well-known/jwks.json`);
    expect(r.status).toBe(404);
    expect(JSON.parse(r.text).error).toContain('HS256');
    expect(r.text).not.toContain(h.config.targets.zephr!.jwt.secret!);
  });
});
