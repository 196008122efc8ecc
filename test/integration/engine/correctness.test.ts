import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../../../src/queue/engine.js';
import { createLinkStore } from '../../../src/store/links.js';
import {
  expectedPayloads,
  type Harness,
  inspect,
  inspectPost,
  mismatches,
  type SourceUserRow,
  startHarness,
} from './harness.js';

/**
 * Issue 8.14: the "every user is correct" comparison itself. It must see a wrong Prelude last_name, a
 * value stored where the source has none, a wrong Sunshine last_name and a wrong derived name, and it
 * must expect "" where Prelude had to clear a field and absence where a field is omitted.
 */
describe('engine: the whole managed payload of every user, per target', () => {
  let h: Harness;
  let engine: Engine;
  let unlinked: Set<string>;
  const sunshineAuth = () =>
    `Basic ${Buffer.from(`${h.env.SUNSHINE_EMAIL}/token:${h.env.SUNSHINE_API_TOKEN}`).toString('base64')}`;

  async function run(users?: string[]) {
    const r = await runActions.waitForRun(
      engine,
      await runActions.startRun(engine, users ? { kind: 'single-user', users } : { kind: 'backfill' }),
      { pollMs: 50 },
    );
    expect(r.status).toBe('completed');
    return r;
  }
  async function sourcePatch(id: string, fields: Record<string, unknown>) {
    await inspectPost(h.sandbox.urls.source, `users/${encodeURIComponent(id)}`, fields, 'PATCH');
  }
  async function vendor(url: string, method: string, headers: Record<string, string>, body: unknown) {
    const res = await fetch(url, {
      method,
      headers: { ...headers, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    expect(res.status, `${method} ${url}: ${await res.text()}`).toBeLessThan(300);
  }
  async function zephrPut(sub: string, doc: Record<string, unknown>) {
    const token = await new SignJWT({ sub })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuedAt()
      .setExpirationTime('2m')
      .sign(new TextEncoder().encode(h.env.ZEPHR_JWT_SECRET));
    await vendor(
      `${h.sandbox.urls.zephr}/blaize/profile/${encodeURIComponent(h.env.ZEPHR_APP_ID!)}`,
      'PUT',
      { authorization: `Bearer ${token}` },
      doc,
    );
  }
  /** The Prelude user of a source user (the sandbox's default `usr` ids: found by external_id). */
  async function preludeUser(id: string) {
    const r = await inspect<{ user?: { id: string; profile: Record<string, string> } }>(
      h.sandbox.urls.prelude,
      `users/${encodeURIComponent(id)}`,
    );
    return r.user!;
  }
  async function preludePatch(id: string, profile: Record<string, string>) {
    const app = encodeURIComponent(h.env.PRELUDE_APP_ID!);
    const usr = (await preludeUser(id)).id;
    await vendor(
      `${h.sandbox.urls.prelude}/v2/session/apps/${app}/users/${encodeURIComponent(usr)}/profile`,
      'PATCH',
      { authorization: `Bearer ${h.env.PRELUDE_API_KEY}` },
      { profile },
    );
  }
  async function sunshinePatch(id: string, profile: Record<string, unknown>) {
    const q = encodeURIComponent(`identity:user:external_id:${id}`);
    await vendor(
      `${h.sandbox.urls.sunshine}/api/v2/user_profiles?identifier=${q}`,
      'PATCH',
      { authorization: sunshineAuth() },
      { profile },
    );
  }

  beforeAll(async () => {
    h = await startHarness({ label: 'correct', sandbox: { users: 40 } });
    engine = await h.engine();
    await engine.startWorkers({ concurrency: 4 });
    const first = await run();
    unlinked = new Set(
      (await engine.runs.items(first.id)).filter((i) => i.outcome === 'unlinked').map((i) => i.userId),
    );
    expect(await mismatches(h, { unlinked })).toEqual([]);
  }, 120_000);
  afterAll(async () => {
    await h.close();
  });

  it('expectations come from the README table: name derived when empty, email trimmed and lowercased, "" to clear', () => {
    const e = expectedPayloads(
      { id: 'u1', firstName: null, lastName: '', email: ' Ann@Example.COM ' },
      new Set(['first_name']),
    );
    expect(e.sunshine).toEqual({
      name: 'ann@example.com',
      identifiers: { external_id: ['u1'], email: ['ann@example.com'] },
      attributes: { last_name: '' },
    });
    expect(e.zephr).toEqual({ last_name: '', email: ' Ann@Example.COM ' });
    expect(e.prelude).toEqual({ first_name: '', last_name: '', email: ' Ann@Example.COM ' });
    expect(expectedPayloads({ id: 'u2' }).sunshine.name).toBe('User u2');
  });

  it('fields that leave the source: Sunshine derives the name, Zephr drops the keys, Prelude holds ""', async () => {
    const users = await inspect<SourceUserRow[]>(h.sandbox.urls.source, 'users');
    const linked = users.filter((u) => !unlinked.has(u.id) && u.firstName && u.lastName && u.email);
    const [a, b] = linked;
    await sourcePatch(a!.id, { lastName: null, email: null });
    await sourcePatch(b!.id, { firstName: null, lastName: null });
    const r = await run([a!.id, b!.id]);
    for (const t of ['sunshine', 'zephr', 'prelude'] as const) expect(r.targets[t]!.outcomes.updated).toBe(2);
    expect(await mismatches(h, { unlinked })).toEqual([]);
    expect((await preludeUser(a!.id)).profile).toEqual({
      first_name: a!.firstName,
      last_name: '',
      email: '',
    });
  });

  it('catches what the old comparison let through', async () => {
    const users = await inspect<SourceUserRow[]>(h.sandbox.urls.source, 'users');
    const linked = users.filter((u) => !unlinked.has(u.id));
    const withLast = linked.filter((u) => u.firstName && u.lastName && u.email);
    const noEmail = linked.find((u) => u.email == null)!;
    const nameless = linked.find((u) => u.firstName == null && u.lastName == null)!;
    const [p, s, z] = withLast.slice(-3);
    expect([p, s, z, noEmail, nameless].every(Boolean)).toBe(true);
    await preludePatch(p!.id, { last_name: 'Wrong' }); // Prelude last_name never compared
    await sunshinePatch(s!.id, { attributes: { last_name: 'Wrong' } }); // Sunshine last_name skipped
    await preludePatch(noEmail.id, { email: 'stale@example.com' }); // any value accepted for a null source
    await zephrPut(z!.id, { first_name: z!.firstName, email: z!.email }); // last_name gone from Zephr
    await sunshinePatch(nameless.id, { name: 'Wrong Name' }); // empty name skipped
    const found = await mismatches(h, { unlinked });
    const want = [
      `prelude ${p!.id}: `,
      `sunshine ${s!.id}: `,
      `prelude ${noEmail.id}: `,
      `zephr ${z!.id}: `,
      `sunshine ${nameless.id}: `,
    ];
    for (const w of want)
      expect(
        found.filter((m) => m.startsWith(w)),
        w,
      ).toHaveLength(1);
    expect(found).toHaveLength(5);
  });

  it('unlinked is an outcome with the lookup that found nobody, no PATCH, no error, no retry', async () => {
    expect(unlinked.size).toBeGreaterThan(0);
    const id = [...unlinked][0]!;
    h.sandbox.sims.prelude.resetCounters();
    const r = await runActions.waitForRun(
      engine,
      await runActions.startRun(engine, {
        kind: 'single-user',
        users: [id],
        targets: ['prelude'],
        full: true,
      }),
      { pollMs: 50 },
    );
    expect(r.targets.prelude!.outcomes).toMatchObject({ unlinked: 1, failed: 0 });
    expect(r.targets.prelude!.retries).toBe(0);
    expect(r.targets.prelude!.lookups).toBe(1);
    const [item] = await engine.runs.items(r.id);
    expect(item).toMatchObject({ outcome: 'unlinked', attempts: 0, requests: [] });
    expect(item!.reason).toMatch(/no Prelude user found \(PRELUDE_LINK_BY=external_id\)/);
    expect(item!.lastError).toBeUndefined();
    // The simulator saw one batch_lookup and nothing else.
    expect(Object.keys(h.sandbox.sims.prelude.counters().byRoute)).toEqual([
      'POST /v2/session/apps/:appID/users/batch_lookup',
    ]);
  });

  it('a link-table entry .. is rejected by name, never sent as a path segment (issue 8.9)', async () => {
    const users = await inspect<SourceUserRow[]>(h.sandbox.urls.source, 'users');
    const victim = users.find((u) => !unlinked.has(u.id))!;
    const links = createLinkStore(h.redis, h.prefix);
    await links.import([{ sourceId: victim.id, preludeUserId: '..' }]);
    try {
      await sourcePatch(victim.id, { firstName: 'Renamed' });
      h.sandbox.sims.prelude.resetCounters();
      const r = await runActions.waitForRun(
        engine,
        await runActions.startRun(engine, { kind: 'single-user', users: [victim.id], targets: ['prelude'] }),
        { pollMs: 50 },
      );
      expect(r.targets.prelude!.outcomes).toMatchObject({ rejected: 1, failed: 0, updated: 0 });
      const [item] = await engine.runs.items(r.id);
      expect(item).toMatchObject({ outcome: 'rejected', attempts: 1, requests: [] });
      expect(item!.reason).toMatch(/Prelude user id "\.\." is '\.\.'/);
      expect(h.sandbox.sims.prelude.counters().total).toBe(0);
    } finally {
      await links.remove([victim.id]);
    }
  });
});

import * as runActions from '../../../jobs/run-actions.js';
