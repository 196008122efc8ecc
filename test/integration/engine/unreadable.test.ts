import { SignJWT } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { type Harness, inspect, mismatches, type SourceUserRow, startHarness } from './harness.js';

/**
 * Issue 8.2 end to end: a target whose reads sometimes answer 200 with a body that is not its JSON (a
 * proxy's HTML page). No write may be built on such a read: the job fails transient, retries, and
 * every user ends correct with the data other systems keep beside ours intact.
 */
describe('engine: unreadable reads (GET 200, not JSON)', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('30% of Zephr and Sunshine GETs answer an HTML page: no write follows one, foreign data survives, every user correct', async () => {
    // Merge mode: the read before a write only exists there (ZEPHR_WRITE_MODE=owned, the default, sends no GET).
    h = await startHarness({
      label: 'unreadable',
      sandbox: { users: 60 },
      env: { ZEPHR_WRITE_MODE: 'merge' },
    });
    const users = await inspect<SourceUserRow[]>(h.sandbox.urls.source, 'users');
    const secret = new TextEncoder().encode(h.env.ZEPHR_JWT_SECRET);
    const zephrUrl = `${h.sandbox.urls.zephr}/blaize/profile/${encodeURIComponent(h.env.ZEPHR_APP_ID!)}`;
    const sunAuth = `Basic ${Buffer.from(`${h.env.SUNSHINE_EMAIL}/token:${h.env.SUNSHINE_API_TOKEN}`).toString('base64')}`;
    const tokenFor = (sub: string) =>
      new SignJWT({ sub })
        .setProtectedHeader({ alg: 'HS256' })
        .setIssuedAt()
        .setExpirationTime('5m')
        .sign(secret);
    const sunUrl = (id: string) =>
      `${h!.sandbox.urls.sunshine}/api/v2/user_profiles?identifier=${encodeURIComponent(`identity:user:external_id:${id}`)}`;
    // Other systems were there first: a Zephr document and a Sunshine profile per user.
    for (const [i, u] of users.entries()) {
      const z = await fetch(zephrUrl, {
        method: 'PUT',
        headers: { authorization: `Bearer ${await tokenFor(u.id)}`, 'content-type': 'application/json' },
        body: JSON.stringify({ consent: { news: i % 2 === 0 }, first_name: 'Stale' }),
      });
      expect(z.status).toBe(200);
      const s = await fetch(sunUrl(u.id), {
        method: 'PUT',
        headers: { authorization: sunAuth, 'content-type': 'application/json' },
        body: JSON.stringify({
          profile: {
            identifiers: [
              { type: 'external_id', value: u.id },
              { type: 'member_id', value: `M-${i}` },
            ],
            attributes: { tier: 'gold', last_name: 'Stale' },
          },
        }),
      });
      expect(s.status).toBe(201);
    }
    for (const t of ['sunshine', 'zephr'] as const) {
      h.sandbox.sims[t].resetCounters();
      h.sandbox.sims[t].setFaults([{ kind: 'body', rate: 0.3, match: { method: 'GET' } }]);
    }

    const engine = await h.engine({ only: ['sunshine', 'zephr'] });
    await engine.startWorkers({ concurrency: 4 });
    const run = await runActions.waitForRun(engine, await runActions.startRun(engine, { kind: 'backfill' }), {
      pollMs: 100,
    });
    expect(run.status).toBe('completed');
    for (const t of ['sunshine', 'zephr'] as const) {
      h.sandbox.sims[t].setFaults([]);
      const o = run.targets[t]!.outcomes;
      expect(o.failed).toBe(0);
      expect(o.updated).toBe(users.length);
      const c = h.sandbox.sims[t].counters().byRoute;
      const gets = Object.entries(c)
        .filter(([r]) => r.startsWith('GET '))
        .reduce((n, [, s]) => n + Object.values(s).reduce((a, b) => a + b, 0), 0);
      const puts = Object.entries(c)
        .filter(([r]) => r.startsWith('PUT '))
        .reduce((n, [, s]) => n + Object.values(s).reduce((a, b) => a + b, 0), 0);
      // One readable GET and one PUT per user; every other GET was unreadable and retried, never written on.
      expect(puts).toBe(users.length);
      expect(gets - users.length).toBe(run.targets[t]!.retries);
      expect(run.targets[t]!.retries).toBeGreaterThan(0);
    }
    // Every managed field right, and every foreign key, identifier and attribute still there.
    expect(
      (await mismatches(h, { unlinked: new Set(users.map((u) => u.id)) })).filter(
        (m) => !m.startsWith('prelude'),
      ),
    ).toEqual([]);
    for (const [i, u] of users.entries()) {
      const z = await fetch(zephrUrl, { headers: { authorization: `Bearer ${await tokenFor(u.id)}` } });
      expect((await z.json()) as Record<string, unknown>).toMatchObject({ consent: { news: i % 2 === 0 } });
      const s = (await (await fetch(sunUrl(u.id), { headers: { authorization: sunAuth } })).json()) as {
        profile: { identifiers: { type: string; value: string }[]; attributes: Record<string, unknown> };
      };
      expect(s.profile.identifiers).toContainEqual({ type: 'member_id', value: `M-${i}` });
      expect(s.profile.attributes.tier).toBe('gold');
    }
  }, 180_000);
});

import * as runActions from '../../../jobs/run-actions.js';
