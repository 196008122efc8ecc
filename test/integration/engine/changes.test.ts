import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as runActions from '../../../jobs/run-actions.js';
import type { Engine } from '../../../src/queue/engine.js';
import {
  type Harness,
  inspect,
  inspectPost,
  mismatches,
  type SourceUserRow,
  startHarness,
  writeCount,
} from './harness.js';

const TARGETS = ['sunshine', 'zephr', 'prelude'] as const;

describe('engine: changes after a backfill', () => {
  let h: Harness;
  let engine: Engine;
  let unlinked: Set<string>;

  beforeAll(async () => {
    h = await startHarness({ label: 'changes' });
    engine = await h.engine();
    await engine.startWorkers({ concurrency: 8 });
    const first = await runActions.waitForRun(
      engine,
      await runActions.startRun(engine, { kind: 'backfill' }),
      { pollMs: 100 },
    );
    expect(first.status).toBe('completed');
    unlinked = new Set(
      (await engine.runs.items(first.id)).filter((i) => i.outcome === 'unlinked').map((i) => i.userId),
    );
  });
  afterAll(async () => {
    await h.close();
  });

  it('writes exactly the 50 changed users, each with its diff', async () => {
    const { changed } = await inspectPost<{ changed: string[] }>(h.sandbox.urls.source, 'users/mutate', {
      share: 0.25,
      seed: 7,
      fields: ['firstName', 'lastName'],
    });
    expect(changed).toHaveLength(50);
    for (const t of TARGETS) h.sandbox.sims[t].resetCounters();

    const run = await runActions.waitForRun(
      engine,
      await runActions.startRun(engine, { kind: 'scheduled' }),
      { pollMs: 100 },
    );
    expect(run.status).toBe('completed');
    const items = await engine.runs.items(run.id);
    for (const t of ['sunshine', 'zephr'] as const) {
      expect(run.targets[t]!.outcomes.updated).toBe(50);
      expect(run.targets[t]!.outcomes.unchanged).toBe(150);
      const written = items.filter((i) => i.target === t && i.outcome === 'updated');
      expect(written.map((i) => i.userId).sort()).toEqual([...changed].sort());
      for (const i of written) {
        expect(Object.keys(i.diff ?? {}).length).toBeGreaterThan(0);
        // Names are masked in run records by default.
        for (const change of Object.values(i.diff!))
          if (typeof change.to === 'string') expect(change.to).toMatch(/\*\*\*#[0-9a-f]{4}$/);
      }
    }
    // Prelude: the changed users it knows are updated; those it does not know are probed again (changed).
    const p = run.targets.prelude!.outcomes;
    const changedUnlinked = changed.filter((id) => unlinked.has(id)).length;
    expect(p.updated).toBe(50 - changedUnlinked);
    expect(p.unlinked).toBe(unlinked.size);
    // One PATCH per changed user Prelude knows; the changed unlinked ones are only looked up again.
    expect(writeCount(h.sandbox, 'prelude')).toBe(50 - changedUnlinked);
    expect(run.targets.prelude!.lookups).toBe(changedUnlinked ? 1 : 0);
    expect(await mismatches(h, { unlinked })).toEqual([]);
    // Each changed user's history shows this run's change per target.
    const history = await engine.runs.history(changed[0]!);
    expect(
      history
        .filter((e) => e.runId === run.id)
        .map((e) => e.item.target)
        .sort(),
    ).toEqual(['prelude', 'sunshine', 'zephr']);
  });

  it('an email change leaves one email identifier on the Sunshine profile and foreign data intact', async () => {
    const users = await inspect<SourceUserRow[]>(h.sandbox.urls.source, 'users');
    const user = users.find((u) => u.email && u.lastName)!;
    const identifier = encodeURIComponent(`identity:user:external_id:${user.id}`);
    const auth = `Basic ${Buffer.from(`${h.env.SUNSHINE_EMAIL}/token:${h.env.SUNSHINE_API_TOKEN}`).toString('base64')}`;
    // Another system adds an identifier and an attribute profile-sync does not manage.
    const patch = await fetch(`${h.sandbox.urls.sunshine}/api/v2/user_profiles?identifier=${identifier}`, {
      method: 'PATCH',
      headers: { authorization: auth, 'content-type': 'application/json' },
      body: JSON.stringify({
        profile: { identifiers: [{ type: 'twitter', value: 'someone' }], attributes: { plan: 'gold' } },
      }),
    });
    expect(patch.status).toBe(200);
    await inspectPost(
      h.sandbox.urls.source,
      `users/${encodeURIComponent(user.id)}`,
      { email: 'New.Address@Example.org' },
      'PATCH',
    );

    const run = await runActions.waitForRun(
      engine,
      await runActions.startRun(engine, { kind: 'single-user', users: [user.id] }),
      {
        pollMs: 100,
      },
    );
    expect(run.targets.sunshine!.outcomes.updated).toBe(1);
    const res = await fetch(`${h.sandbox.urls.sunshine}/api/v2/user_profiles?identifier=${identifier}`, {
      headers: { authorization: auth },
    });
    const { profile } = (await res.json()) as {
      profile: { identifiers: { type: string; value: string }[]; attributes: Record<string, unknown> };
    };
    expect(profile.identifiers.filter((i) => i.type === 'email')).toEqual([
      { type: 'email', value: 'new.address@example.org' },
    ]);
    expect(profile.identifiers).toContainEqual({ type: 'twitter', value: 'someone' });
    expect(profile.attributes.plan).toBe('gold');
    const [item] = (await engine.runs.items(run.id)).filter((i) => i.target === 'sunshine');
    expect(item!.diff!['identifiers.email']).toEqual({
      from: expect.stringMatching(/\*\*\*@/),
      to: expect.stringMatching(/^n\*\*\*@example\.org#[0-9a-f]{4}$/),
    });
  });

  it('--dry-run sends no write and plans the requests; --full reads and repairs drift', async () => {
    const { changed } = await inspectPost<{ changed: string[] }>(h.sandbox.urls.source, 'users/mutate', {
      share: 0.05,
      seed: 11,
      fields: ['lastName'],
    });
    for (const t of TARGETS) h.sandbox.sims[t].resetCounters();
    const dry = await runActions.waitForRun(
      engine,
      await runActions.startRun(engine, { kind: 'backfill', dryRun: true, plan: true }),
      { pollMs: 100 },
    );
    expect(dry.status).toBe('completed');
    for (const t of ['sunshine', 'zephr'] as const) {
      expect(h.sandbox.sims[t].counters().total).toBe(0);
      expect(dry.targets[t]!.requests).toBe(0);
    }
    // Prelude: at most the lookups of changed users it does not know (a read, sent in a dry run too).
    expect(writeCount(h.sandbox, 'prelude')).toBe(0);
    expect(dry.targets.prelude!.requests).toBe(dry.targets.prelude!.lookups);
    expect(dry.targets.sunshine!.outcomes.updated).toBe(10);
    expect(dry.targets.sunshine!.planned).toBeGreaterThanOrEqual(10);
    const plan: unknown[] = [];
    for await (const line of engine.runs.plan(dry.id)) plan.push(line);
    expect(plan.length).toBe(TARGETS.reduce((n, t) => n + dry.targets[t]!.planned, 0));
    expect(JSON.stringify(plan)).not.toMatch(/"last_name":"[^"*]{2,}"/);

    // Drift outside profile-sync: someone edits a managed attribute in Sunshine by hand.
    const users = await inspect<SourceUserRow[]>(h.sandbox.urls.source, 'users');
    const victim = users.find((u) => u.firstName && u.lastName && !changed.includes(u.id))!;
    const identifier = encodeURIComponent(`identity:user:external_id:${victim.id}`);
    const auth = `Basic ${Buffer.from(`${h.env.SUNSHINE_EMAIL}/token:${h.env.SUNSHINE_API_TOKEN}`).toString('base64')}`;
    const url = `${h.sandbox.urls.sunshine}/api/v2/user_profiles?identifier=${identifier}`;
    const edit = await fetch(url, {
      method: 'PATCH',
      headers: { authorization: auth, 'content-type': 'application/json' },
      body: JSON.stringify({ profile: { attributes: { first_name: 'Tampered', plan: 'gold' } } }),
    });
    expect(edit.status).toBe(200);
    // Without --full the hash says nothing changed: no request.
    const quiet = await runActions.waitForRun(
      engine,
      await runActions.startRun(engine, { kind: 'single-user', users: [victim.id], targets: ['sunshine'] }),
      { pollMs: 100 },
    );
    expect(quiet.targets.sunshine!.outcomes.unchanged).toBe(1);
    const full = await runActions.waitForRun(
      engine,
      await runActions.startRun(engine, {
        kind: 'single-user',
        users: [victim.id],
        full: true,
        targets: ['sunshine'],
      }),
      { pollMs: 100 },
    );
    expect(full.targets.sunshine!.outcomes.updated).toBe(1);
    const [item] = await engine.runs.items(full.id);
    expect(item!.drift).toEqual({
      'attributes.first_name': {
        from: expect.any(String),
        to: expect.stringMatching(/^T\*\*\*#[0-9a-f]{4}$/),
      },
    });
    const { profile } = (await (await fetch(url, { headers: { authorization: auth } })).json()) as {
      profile: { attributes: Record<string, unknown> };
    };
    expect(profile.attributes.first_name).toBe(victim.firstName);
    // Fields profile-sync does not own are never touched.
    expect(profile.attributes.plan).toBe('gold');
  });
});
