import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { type Sandbox, startSandbox } from '../../../src/sandbox/index.js';
import { call } from './http.js';
import { callEachService } from './services.js';

const ENV_NAMES = [
  'SOURCE_URL',
  'SOURCE_USERNAME',
  'SOURCE_PASSWORD',
  'SUNSHINE_URL',
  'SUNSHINE_EMAIL',
  'SUNSHINE_API_TOKEN',
  'ZEPHR_URL',
  'ZEPHR_APP_ID',
  'ZEPHR_JWT_SECRET',
  'PRELUDE_URL',
  'PRELUDE_APP_ID',
  'PRELUDE_API_KEY',
];

async function listen(port: number): Promise<Server> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return server;
}

/** A base port P whose P..P+3 were free a moment ago. */
async function freeBase(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const probe = await listen(0);
    const base = (probe.address() as AddressInfo).port;
    probe.close();
    if (base > 65_000) continue;
    const held: Server[] = [];
    try {
      for (let i = 0; i < 4; i++) held.push(await listen(base + i));
      return base;
    } catch {
      // taken: try another
    } finally {
      await Promise.all(held.map((s) => new Promise((r) => s.close(r))));
    }
  }
  throw new Error('no four consecutive free ports');
}

describe('startSandbox', () => {
  it('serves the four services on ephemeral ports and returns the env a client needs', async () => {
    const sb: Sandbox = await startSandbox({ port: 0, users: 20 });
    try {
      expect(Object.keys(sb.env)).toEqual(ENV_NAMES);
      const urls = Object.values(sb.urls);
      expect(new Set(urls).size).toBe(4);
      for (const url of urls) expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(sb.env.SOURCE_URL).toBe(sb.urls.source);
      expect(sb.env.PRELUDE_URL).toBe(sb.urls.prelude);
      expect(await callEachService(sb.env)).toEqual({ source: 200, sunshine: 404, zephr: 200, prelude: 204 });
      for (const sim of Object.values(sb.sims))
        expect(sim.rateLimit()).toEqual({ perMinute: 6000, burst: 200 });
      // Without credentials each one refuses.
      for (const [url, path] of [
        [sb.urls.source, '/user/count'],
        [sb.urls.sunshine, '/api/v2/users/1/profiles'],
        [sb.urls.zephr, '/blaize/profile/app'],
      ] as const) {
        expect((await call(url, 'GET', path)).status).toBe(401);
      }
    } finally {
      await sb.close();
    }
  });

  it('uses P, P+1, P+2, P+3 for a fixed first port', async () => {
    const base = await freeBase();
    const sb = await startSandbox({ port: base, users: 1, rateLimit: null });
    try {
      expect(sb.urls).toEqual({
        source: `http://127.0.0.1:${base}`,
        sunshine: `http://127.0.0.1:${base + 1}`,
        zephr: `http://127.0.0.1:${base + 2}`,
        prelude: `http://127.0.0.1:${base + 3}`,
      });
      for (const sim of Object.values(sb.sims)) expect(sim.rateLimit()).toBeNull();
    } finally {
      await sb.close();
    }
  });

  it('fails as a whole when a port is taken, leaving no simulator listening', async () => {
    const base = await freeBase();
    const blocker = await listen(base + 2);
    try {
      await expect(startSandbox({ port: base, users: 1 })).rejects.toThrow(/EADDRINUSE/);
      const again = await Promise.all([listen(base), listen(base + 1)]);
      await Promise.all(again.map((s) => new Promise((r) => s.close(r))));
    } finally {
      await new Promise((r) => blocker.close(r));
    }
  });

  it('passes the seed and the unknown share to Prelude', async () => {
    const known = await startSandbox({ port: 0, users: 5, preludeUnknownShare: 0 });
    const unknown = await startSandbox({ port: 0, users: 5, preludeUnknownShare: 1 });
    try {
      // The default `usr` ids (the real service's): a user Prelude knows is found by external_id.
      const lookup = async (sb: Sandbox) =>
        (
          await call(
            sb.urls.prelude,
            'POST',
            `/v2/session/apps/${sb.env.PRELUDE_APP_ID}/users/batch_lookup`,
            {
              headers: { authorization: `Bearer ${sb.env.PRELUDE_API_KEY}` },
              json: { external_ids: ['user-000001'] },
            },
          )
        ).body as { users: { id: string; external_id?: string }[] };
      const found = await lookup(known);
      expect(found.users).toHaveLength(1);
      expect(found.users[0]).toMatchObject({
        id: expect.stringMatching(/^usr_/),
        external_id: 'user-000001',
      });
      expect((await lookup(unknown)).users).toEqual([]);
    } finally {
      await Promise.all([known.close(), unknown.close()]);
    }
  });

  it('has no PRELUDE_LINK_BY by default (usr ids, as the real service); `source` ids link by template', async () => {
    const usr = await startSandbox({ port: 0, users: 5, preludeUnknownShare: 0 });
    const legacy = await startSandbox({ port: 0, users: 5, preludeUnknownShare: 0, preludeIds: 'source' });
    try {
      const patch = (sb: Sandbox) =>
        call(
          sb.urls.prelude,
          'PATCH',
          `/v2/session/apps/${sb.env.PRELUDE_APP_ID}/users/user-000001/profile`,
          {
            headers: { authorization: `Bearer ${sb.env.PRELUDE_API_KEY}` },
            json: { profile: { first_name: 'Anna' } },
          },
        );
      // A source id is never a Prelude user id.
      expect(usr.env.PRELUDE_LINK_BY).toBeUndefined();
      expect(await patch(usr)).toMatchObject({ status: 404, body: { code: 'user_not_found' } });
      expect(legacy.env.PRELUDE_LINK_BY).toBe('template');
      expect((await patch(legacy)).status).toBe(204);
    } finally {
      await Promise.all([usr.close(), legacy.close()]);
    }
  });
});
