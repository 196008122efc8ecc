import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as runActions from '../../../jobs/run-actions.js';
import type { Engine } from '../../../src/queue/engine.js';
import { createLinkStore } from '../../../src/store/links.js';
import { type Harness, inspect, inspectPost, type SourceUserRow, startHarness } from './harness.js';

/**
 * Issue 10: Prelude as it really is (the sandbox's default `usr` ids, with no `preludeIds` option here:
 * only `usr_` ids are accepted, our id is the Prelude user's external_id). 1,000 users: one backfill
 * links every user Prelude knows by external_id with ceil(1000/100) batch_lookups, at most one PATCH
 * per linked user, and an unchanged re-run sends Prelude nothing.
 */
interface PreludeUser {
  id: string;
  external_id?: string;
  identifiers: { value: string }[];
}

/** Requests the Prelude simulator answered, split into lookups, PATCHes and the rest. */
function preludeRequests(h: Harness) {
  const c = h.sandbox.sims.prelude.counters();
  const out = { lookups: 0, patches: 0, other: 0 };
  for (const [route, byStatus] of Object.entries(c.byRoute)) {
    if (route.includes('/__sandbox')) continue;
    const n = Object.values(byStatus).reduce((a, b) => a + b, 0);
    if (route.includes('batch_lookup')) out.lookups += n;
    else if (route.startsWith('PATCH ')) out.patches += n;
    else out.other += n;
  }
  return out;
}

async function run(engine: Engine): Promise<Awaited<ReturnType<typeof runActions.waitForRun>>> {
  const runId = await runActions.startRun(engine, { kind: 'backfill', targets: ['prelude'] });
  return runActions.waitForRun(engine, runId, { pollMs: 100 });
}

describe.each(['external_id', 'external_id,email'] as const)(
  'prelude linking on a Prelude with its own usr_ ids (PRELUDE_LINK_BY=%s)',
  (linkBy) => {
    let h: Harness;
    let engine: Engine;
    let source: SourceUserRow[];
    let prelude: PreludeUser[];

    beforeAll(async () => {
      h = await startHarness({
        label: 'plink',
        sandbox: { users: 1000 },
        env: { PRELUDE_LINK_BY: linkBy },
      });
      engine = await h.engine();
      await engine.startWorkers({ concurrency: 8 });
      source = await inspect<SourceUserRow[]>(h.sandbox.urls.source, 'users');
      prelude = (await inspect<{ users: PreludeUser[] }>(h.sandbox.urls.prelude, 'users')).users;
    }, 120_000);
    afterAll(async () => {
      await h?.close();
    });

    it('the first backfill links and writes every user Prelude knows, with 10 lookups; a re-run sends nothing', async () => {
      expect(source).toHaveLength(1000);
      h.sandbox.sims.prelude.resetCounters();
      const first = await run(engine);
      expect(first.status).toBe('completed');
      const p = first.targets.prelude!;
      expect(p.outcomes.failed).toBe(0);

      // Who should be linked: by external_id, and (external_id,email) by email when that Prelude user has
      // no external_id, its address is its own and one source user has it.
      const byExt = new Map(prelude.filter((u) => u.external_id).map((u) => [u.external_id!, u.id]));
      const expected = new Map<string, string>();
      for (const s of source) if (byExt.has(s.id)) expected.set(s.id, byExt.get(s.id)!);
      if (linkBy === 'external_id,email') {
        const emailCount = new Map<string, number>();
        for (const s of source) {
          const e = s.email?.trim().toLowerCase();
          if (e) emailCount.set(e, (emailCount.get(e) ?? 0) + 1);
        }
        const byEmail = new Map<string, string[]>();
        for (const u of prelude)
          for (const i of u.identifiers) {
            const e = i.value.toLowerCase();
            byEmail.set(e, [...(byEmail.get(e) ?? []), u.id]);
          }
        const taken = new Set(expected.values());
        for (const s of source) {
          const e = s.email?.trim().toLowerCase();
          const hits = e ? (byEmail.get(e) ?? []) : [];
          if (expected.has(s.id) || !e || emailCount.get(e) !== 1 || hits.length !== 1) continue;
          const u = prelude.find((x) => x.id === hits[0])!;
          if (u.external_id || taken.has(u.id)) continue;
          expected.set(s.id, u.id);
        }
        expect(expected.size).toBeGreaterThan(byExt.size * 0.5 + 0); // some found by email
      }
      expect(expected.size).toBeGreaterThan(700);

      const links = createLinkStore(h.redis, h.prefix);
      const table = new Map<string, string>();
      for await (const [k, v] of links.entries()) table.set(k, v);
      expect(table).toEqual(expected);
      const info = await links.info([...table.keys()]);
      for (const [id] of table) expect(['external_id', 'email']).toContain(info.get(id)?.how);
      if (linkBy === 'external_id,email')
        expect([...info.values()].some((i) => i.how === 'email')).toBe(true);

      const sent = preludeRequests(h);
      expect(sent.lookups).toBe(10); // ceil(1000 / 100)
      expect(p.lookups).toBe(10);
      expect(sent.other).toBe(0);
      expect(sent.patches).toBeLessThanOrEqual(expected.size);
      expect(p.requests).toBe(sent.lookups + sent.patches);
      expect(p.outcomes.created).toBe(sent.patches);
      expect(p.outcomes.created + p.outcomes.rejected + p.outcomes.unlinked).toBe(1000);

      // Every linked user's profile is in its Prelude user (looked up by external_id or usr id).
      const byId = new Map(source.map((s) => [s.id, s]));
      for (const [sourceId, usr] of expected) {
        const s = byId.get(sourceId)!;
        const got = await fetch(`${h.sandbox.urls.prelude}/__sandbox/profiles/${encodeURIComponent(usr)}`);
        if (p.outcomes.rejected && got.status === 404) continue; // a user the mapping rejects
        const body = (await got.json()) as { profile: Record<string, string> };
        if (typeof s.firstName === 'string') expect(body.profile.first_name).toBe(s.firstName);
        if (typeof s.email === 'string') expect(body.profile.email).toBe(s.email);
      }

      // Unchanged re-run: no Prelude request at all (linked: same hash; unlinked: remembered).
      h.sandbox.sims.prelude.resetCounters();
      const again = await run(engine);
      expect(again.status).toBe('completed');
      expect(preludeRequests(h)).toEqual({ lookups: 0, patches: 0, other: 0 });
      expect(again.targets.prelude!.requests).toBe(0);
      expect(again.targets.prelude!.outcomes.unchanged).toBe(p.outcomes.created);
    }, 240_000);

    it.runIf(linkBy === 'external_id')(
      '--full (issue 10.4) reads each linked user, repairs only the one changed behind our back',
      async () => {
        const links = createLinkStore(h.redis, h.prefix);
        const linked = [...(await links.getMany(source.map((s) => s.id)))];
        const [sourceId, usr] = linked[1]!;
        const s = source.find((u) => u.id === sourceId)!;
        // Another system changes the profile in Prelude, through Prelude's own API.
        const env = h.sandbox.env;
        const patched = await fetch(
          `${env.PRELUDE_URL}/v2/session/apps/${env.PRELUDE_APP_ID}/users/${encodeURIComponent(usr)}/profile`,
          {
            method: 'PATCH',
            headers: { authorization: `Bearer ${env.PRELUDE_API_KEY}`, 'content-type': 'application/json' },
            body: JSON.stringify({ profile: { first_name: 'Drifted' } }),
          },
        );
        expect(patched.status).toBe(204);
        h.sandbox.sims.prelude.resetCounters();
        const runId = await runActions.startRun(engine, {
          kind: 'backfill',
          targets: ['prelude'],
          full: true,
        });
        const r = await runActions.waitForRun(engine, runId, { pollMs: 100 });
        expect(r.status).toBe('completed');
        const sent = preludeRequests(h);
        expect(sent.patches).toBe(1);
        expect(sent.other).toBe(linked.length); // one GET per linked user, none for the unlinked
        expect(r.targets.prelude!.outcomes.updated).toBe(1);
        const item = (await engine.runs.items(r.id)).find((i) => i.userId === sourceId);
        expect(item?.outcome).toBe('updated');
        expect(item?.drift).toBeDefined();
        const got = await fetch(`${h.sandbox.urls.prelude}/__sandbox/profiles/${encodeURIComponent(usr)}`);
        const body = (await got.json()) as { profile: Record<string, string> };
        expect(body.profile.first_name).toBe(typeof s.firstName === 'string' ? s.firstName : '');
      },
      240_000,
    );

    it('a Prelude user deleted under a link: user_not_found drops the link and counts unlinked', async () => {
      const links = createLinkStore(h.redis, h.prefix);
      const linked = [...(await links.getMany(source.map((s) => s.id)))];
      const [sourceId, usr] = linked[0]!;
      const del = await fetch(`${h.sandbox.urls.prelude}/__sandbox/users/${encodeURIComponent(usr)}`, {
        method: 'DELETE',
      });
      expect(del.ok).toBe(true);
      await inspectPost(
        h.sandbox.urls.source,
        `users/${encodeURIComponent(sourceId)}`,
        { firstName: 'Renamed' },
        'PATCH',
      );
      h.sandbox.sims.prelude.resetCounters();
      const r = await run(engine);
      expect(r.targets.prelude!.outcomes.unlinked).toBeGreaterThanOrEqual(1);
      expect(preludeRequests(h)).toEqual({ lookups: 0, patches: 1, other: 0 });
      expect(await links.get(sourceId)).toBeUndefined();
      const item = (await engine.runs.items(r.id)).find((i) => i.userId === sourceId);
      expect(item?.outcome).toBe('unlinked');
    }, 120_000);
  },
);

describe('prelude linking: a user added to Prelude later is linked after UNLINKED_RECHECK', () => {
  let h: Harness;
  let engine: Engine;

  beforeAll(async () => {
    h = await startHarness({
      label: 'plate',
      sandbox: { users: 1000 },
      env: { UNLINKED_RECHECK: '1' }, // 1 s: the second run is past it once a second has gone by
    });
    engine = await h.engine();
    await engine.startWorkers({ concurrency: 4 });
  }, 120_000);
  afterAll(async () => {
    await h?.close();
  });

  it('unknown at first (unlinked, no PATCH), linked and written on the first run after the recheck', async () => {
    const first = await run(engine);
    const items = await engine.runs.items(first.id);
    expect(first.targets.prelude!.outcomes.unlinked).toBeGreaterThan(0);
    const links = createLinkStore(h.redis, h.prefix);
    const source = await inspect<SourceUserRow[]>(h.sandbox.urls.source, 'users');
    const known = await links.getMany(source.map((s) => s.id));
    const late = source.find(
      (s) => !known.has(s.id) && typeof s.email === 'string' && s.email.includes('@'),
    )!;
    expect(late).toBeDefined();
    expect(items.some((i) => i.userId === late.id && i.outcome === 'created')).toBe(false);
    await inspectPost(h.sandbox.urls.prelude, 'users', { external_id: late.id });
    // Wait until the recheck interval (1 s) is over, on the clock the marker was written with.
    const marker = (await engine.state.getUnlinked('prelude', late.id))!.at;
    await expect.poll(() => Date.now() - marker, { timeout: 5000, interval: 100 }).toBeGreaterThan(1000);
    h.sandbox.sims.prelude.resetCounters();
    const second = await run(engine);
    expect(second.status).toBe('completed');
    expect(await links.get(late.id)).toMatch(/^usr_/);
    expect((await links.info([late.id])).get(late.id)?.how).toBe('external_id');
    const created = (await engine.runs.items(second.id)).filter((i) => i.outcome === 'created');
    expect(created.map((i) => i.userId)).toEqual([late.id]);
    // The re-checked unlinked users were looked up together, 100 per request in each scan chunk of
    // 500 (the simulator's own log): no more than one request per chunk here, and one PATCH.
    const unlinkedBefore = first.targets.prelude!.outcomes.unlinked;
    expect(unlinkedBefore).toBeLessThanOrEqual(200);
    const sent = preludeRequests(h);
    expect(sent.lookups).toBeGreaterThanOrEqual(Math.ceil(unlinkedBefore / 100));
    expect(sent.lookups).toBeLessThanOrEqual(2);
    expect(second.targets.prelude!.lookups).toBe(sent.lookups);
    expect(sent.patches).toBe(1);
    expect(sent.other).toBe(0);
  }, 120_000);
});

describe('prelude linking: PRELUDE_CREATE_USERS=true creates the users no lookup found (issue 10.3)', () => {
  let h: Harness;
  let engine: Engine;

  beforeAll(async () => {
    h = await startHarness({
      label: 'pcreate',
      sandbox: { users: 150 },
      env: { PRELUDE_CREATE_USERS: 'true' },
    });
    engine = await h.engine();
    await engine.startWorkers({ concurrency: 4 });
  }, 120_000);
  afterAll(async () => {
    await h?.close();
  });

  it('one POST .../users per user not found (with an email), its usr_ id the link, no PATCH for them; re-run silent', async () => {
    h.sandbox.sims.prelude.resetCounters();
    const first = await run(engine);
    expect(first.status).toBe('completed');
    const p = first.targets.prelude!;
    const failed = (await engine.runs.items(first.id)).filter((i) => i.outcome === 'failed');
    expect(failed.map((i) => i.lastError?.message)).toEqual([]);
    expect(p.outcomes.failed).toBe(0);
    const links = createLinkStore(h.redis, h.prefix);
    const source = await inspect<SourceUserRow[]>(h.sandbox.urls.source, 'users');
    const table = await links.getMany(source.map((s) => s.id));
    const info = await links.info([...table.keys()]);
    const created = [...info].filter(([, i]) => i.how === 'create').map(([id]) => id);
    expect(created.length).toBeGreaterThan(0);
    const sent = preludeRequests(h);
    const conflicts = h.sandbox.sims.prelude.counters().byRoute;
    const creates = Object.entries(conflicts)
      .filter(([r]) => r.startsWith('POST ') && !r.includes('batch_lookup') && !r.includes('__sandbox'))
      .flatMap(([, byStatus]) => Object.entries(byStatus));
    expect(Object.fromEntries(creates)['201']).toBe(created.length); // one create per created user
    expect(creates.every(([status]) => status === '201' || status === '409')).toBe(true);
    expect(sent.other).toBe(creates.reduce((a, [, n]) => a + n, 0)); // only creates besides lookups and PATCHes
    expect(sent.lookups).toBe(2); // ceil(150 / 100)
    expect(sent.patches).toBe(table.size - created.length);
    for (const id of created) {
      const u = await inspect<{ user?: { id: string; external_id?: string } }>(
        h.sandbox.urls.prelude,
        `users/${encodeURIComponent(table.get(id)!)}`,
      );
      expect(u.user?.external_id).toBe(id);
    }
    // Users left unlinked have no email to log in with, or one a Prelude user already has (409 conflict:
    // known only by email, not linked under PRELUDE_LINK_BY=external_id): never a second login.
    const preludeEmails = new Set(
      (await inspect<{ users: PreludeUser[] }>(h.sandbox.urls.prelude, 'users')).users.flatMap((u) =>
        u.identifiers.map((i) => i.value.toLowerCase()),
      ),
    );
    for (const s of source)
      if (!table.has(s.id) && typeof s.email === 'string' && s.email.includes('@'))
        expect(preludeEmails.has(s.email.trim().toLowerCase())).toBe(true);
    h.sandbox.sims.prelude.resetCounters();
    await run(engine);
    expect(preludeRequests(h)).toEqual({ lookups: 0, patches: 0, other: 0 });
  }, 120_000);
});
