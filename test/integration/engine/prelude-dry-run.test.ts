import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as runActions from '../../../jobs/run-actions.js';
import { preludePlanNote } from '../../../src/commands/print/run-report.js';
import type { Engine } from '../../../src/queue/engine.js';
import { type Harness, inspectPost, startHarness } from './harness.js';

/**
 * Issue 10, item 5: `--dry-run` with PRELUDE_CREATE_USERS=true plans what a real run does. It sends the
 * lookups (reads) and plans, per user, exactly one request: the PATCH at the `usr_` id a lookup found,
 * or the create (profile included) for a user it did not find and who has an email; a user without
 * one is `unlinked`. Its creates are an upper bound: a create answered 409 (the address already a
 * login) leaves the user unlinked. Checked against the real run that follows, on the simulator's log.
 */
const LOOKUP = 'POST /v2/session/apps/:appID/users/batch_lookup';
const CREATE = 'POST /v2/session/apps/:appID/users';
const PATCH = 'PATCH /v2/session/apps/:appID/users/:userID/profile';

describe('prelude: --dry-run with PRELUDE_CREATE_USERS=true (issue 10.5)', () => {
  let h: Harness;
  let engine: Engine;
  const routes = () => {
    const out: Record<string, Record<string, number>> = {};
    for (const [r, s] of Object.entries(h.sandbox.sims.prelude.counters().byRoute))
      if (!r.includes('/__sandbox')) out[r] = s;
    return out;
  };
  const sum = (s: Record<string, number> | undefined) => Object.values(s ?? {}).reduce((a, b) => a + b, 0);
  const run = async (dryRun: boolean) =>
    runActions.waitForRun(
      engine,
      await runActions.startRun(engine, { kind: 'backfill', targets: ['prelude'], dryRun, plan: dryRun }),
      { pollMs: 50 },
    );

  beforeAll(async () => {
    h = await startHarness({ label: 'pdry', sandbox: { users: 300 }, env: { PRELUDE_CREATE_USERS: 'true' } });
    engine = await h.engine({ only: ['prelude'] });
    await engine.startWorkers({ concurrency: 4 });
  }, 60_000);
  afterAll(async () => {
    await h?.close();
  });

  it('plans one request per user (no lookup, no PATCH after a create); the real run matches it', async () => {
    h.sandbox.sims.prelude.resetCounters();
    const dry = await run(true);
    const d = dry.targets.prelude!;
    // Only reads reached Prelude: the lookups, 100 users each.
    expect(Object.keys(routes())).toEqual([LOOKUP]);
    expect(d.lookups).toBe(3);
    expect(d.requests).toBe(3);
    expect(d.creates).toBeGreaterThan(0);
    // One planned request per planned write: a PATCH for a found user, a create for the others.
    expect(d.planned).toBe(d.outcomes.created);
    const plan: { method: string; path: string; userId: string }[] = [];
    for await (const line of engine.runs.plan(dry.id)) plan.push(line as (typeof plan)[number]);
    expect(plan.filter((l) => l.path.endsWith('/batch_lookup'))).toEqual([]);
    expect(plan.filter((l) => l.method === 'POST')).toHaveLength(d.creates);
    expect(plan.filter((l) => l.method === 'PATCH')).toHaveLength(d.outcomes.created - d.creates);
    expect(new Set(plan.map((l) => l.userId)).size).toBe(plan.length);
    const note = preludePlanNote(dry).join('\n');
    expect(note).toContain('3 batch_lookup requests were sent');
    expect(note).toContain(`creates at most ${d.creates} Prelude users`);

    h.sandbox.sims.prelude.resetCounters();
    const real = await run(false);
    const r = real.targets.prelude!;
    const sent = routes();
    const conflicts = sent[CREATE]?.['409'] ?? 0;
    expect(sum(sent[LOOKUP])).toBe(3);
    // What the dry run planned is what the real run sent besides its lookups.
    expect(sum(sent[CREATE]) + sum(sent[PATCH])).toBe(d.planned);
    expect(sent[CREATE]?.['201']).toBe(r.creates);
    // Creates: at most the plan's; each one fewer is a 409 that left the user unlinked.
    expect(r.creates).toBe(d.creates - conflicts);
    expect(r.outcomes.created).toBe(d.outcomes.created - conflicts);
    expect(r.outcomes.unlinked).toBe(d.outcomes.unlinked + conflicts);
    expect(r.outcomes.failed + d.outcomes.failed).toBe(0);
  }, 120_000);

  it('a dry run whose lookup fails counts its users failed with the lookup error and plans nothing for them', async () => {
    // Changed users: the unlinked among them are looked up again (their marker is for the old payload).
    await inspectPost(h.sandbox.urls.source, 'users/mutate', { share: 0.5, seed: 4, fields: ['lastName'] });
    h.sandbox.sims.prelude.resetCounters();
    h.sandbox.sims.prelude.setFaults([{ kind: 'status', status: 503, match: { route: LOOKUP } }]);
    try {
      const dry = await run(true);
      const d = dry.targets.prelude!;
      // Linked users are still planned (no lookup needed); the rest failed, none counted unlinked.
      expect(d.outcomes.failed).toBeGreaterThan(0);
      const failed = (await engine.runs.items(dry.id)).filter((i) => i.outcome === 'failed');
      expect(failed).toHaveLength(d.outcomes.failed);
      for (const i of failed) expect(i.lastError).toMatchObject({ code: 'E_TRANSIENT', status: 503 });
      expect(Object.keys(routes())).toEqual([LOOKUP]);
    } finally {
      h.sandbox.sims.prelude.setFaults([]);
    }
  }, 60_000);
});
