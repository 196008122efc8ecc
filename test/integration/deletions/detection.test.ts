import { afterEach, describe, expect, it } from 'vitest';
import * as runActions from '../../../jobs/run-actions.js';
import type { Engine } from '../../../src/queue/engine.js';
import { type Harness, inspect, inspectPost, startHarness, writeCount } from '../engine/harness.js';

const TARGETS = ['sunshine', 'zephr', 'prelude'] as const;

interface SunshineProfile {
  identifiers: { type: string; value: string }[];
  source: string;
}

/** Source ids that have a Sunshine profile written by profile-sync (sandbox state). */
async function sunshineIds(h: Harness): Promise<Set<string>> {
  const all = await inspect<SunshineProfile[]>(h.sandbox.urls.sunshine, 'profiles');
  return new Set(
    all
      .filter((p) => p.source === 'identity')
      .map((p) => p.identifiers.find((i) => i.type === 'external_id')?.value)
      .filter((v): v is string => v !== undefined),
  );
}

async function zephrSubs(h: Harness): Promise<Map<string, Record<string, unknown>>> {
  const all = await inspect<{ sub: string; profile: Record<string, unknown> }[]>(
    h.sandbox.urls.zephr,
    'profiles',
  );
  return new Map(all.map((z) => [z.sub, z.profile]));
}

async function removeFromSource(h: Harness, body: { share: number; seed?: number }): Promise<string[]> {
  const { removed } = await inspectPost<{ removed: string[] }>(h.sandbox.urls.source, 'users/remove', body);
  return removed;
}

async function backfill(
  engine: Engine,
  req: Parameters<typeof runActions.startRun>[1] = { kind: 'backfill' },
) {
  return runActions.waitForRun(engine, await runActions.startRun(engine, req), { pollMs: 100 });
}

describe('users who leave the source (issue 5)', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('defaults: 20 of 1,000 users leave -> orphaned in every target, untouched, last payload recorded (masked)', async () => {
    h = await startHarness({ label: 'del-ignore', sandbox: { users: 1000 } });
    const engine = await h.engine();
    await engine.startWorkers({ concurrency: 8 });
    const first = await backfill(engine);
    expect(first.status).toBe('completed');
    const known = { prelude: await engine.state.count('prelude') };
    const gone = await removeFromSource(h, { share: 0.02, seed: 7 });
    expect(gone).toHaveLength(20);
    const goneSet = new Set(gone);
    const preludeKnownGone = (await engine.state.getMany('prelude', gone)).filter((s) => s !== null).length;
    for (const t of TARGETS) h.sandbox.sims[t].resetCounters();

    const run = await backfill(engine, { kind: 'scheduled' });
    expect(run.status).toBe('completed');
    expect(run.scan.complete).toBe(true);
    expect(run.targets.sunshine!.outcomes.orphaned).toBe(20);
    expect(run.targets.zephr!.outcomes.orphaned).toBe(20);
    expect(run.targets.prelude!.outcomes.orphaned).toBe(preludeKnownGone);
    expect(run.deletions?.targets.sunshine).toEqual({ policy: 'ignore', known: 1000, gone: 20 });
    expect(run.deletions?.targets.prelude).toEqual({
      policy: 'ignore',
      known: known.prelude,
      gone: preludeKnownGone,
    });
    expect(run.deletions?.held).toBeUndefined();
    for (const t of TARGETS) {
      expect(run.targets[t]!.outcomes.removed).toBe(0);
      expect(writeCount(h.sandbox, t)).toBe(0);
    }
    // Untouched: the 20 profiles are still in Sunshine and Zephr, state kept (they stay orphaned).
    const sun = await sunshineIds(h);
    for (const id of gone) expect(sun.has(id)).toBe(true);
    expect(sun.size).toBe(1000);
    const z = await zephrSubs(h);
    for (const id of gone) expect(z.get(id)?.first_name).toBeDefined();
    expect(await engine.state.count('sunshine')).toBe(1000);

    const items = (await engine.runs.items(run.id)).filter((i) => i.outcome === 'orphaned');
    expect(items).toHaveLength(40 + preludeKnownGone);
    for (const i of items) {
      expect(goneSet.has(i.userId)).toBe(true);
      expect(i.payload).toBeDefined();
    }
    const sunItem = items.find((i) => i.target === 'sunshine')!;
    // The last written payload, masked as usual: ids kept, names and emails masked.
    expect(sunItem.payload!['identifiers.external_id']).toBe(sunItem.userId);
    const email = sunItem.payload!['identifiers.email'];
    if (email !== undefined) expect(String(email)).toMatch(/^.\*\*\*@/);

    // Every later run counts the orphans again, but records items only for users newly orphaned.
    const more = await removeFromSource(h, { share: 0.005, seed: 99 });
    const third = await backfill(engine, { kind: 'scheduled' });
    expect(third.targets.sunshine!.outcomes.orphaned).toBe(20 + more.length);
    const thirdItems = (await engine.runs.items(third.id)).filter(
      (i) => i.outcome === 'orphaned' && i.target === 'sunshine',
    );
    expect(thirdItems.map((i) => i.userId).sort()).toEqual([...more].sort());
  }, 120_000);

  it('SUNSHINE_ON_DELETE=delete: the 20 Sunshine profiles are deleted, the other 980 untouched; state dropped', async () => {
    h = await startHarness({
      label: 'del-delete',
      sandbox: { users: 1000 },
      env: { SUNSHINE_ON_DELETE: 'delete' },
    });
    const engine = await h.engine();
    await engine.startWorkers({ concurrency: 8 });
    expect((await backfill(engine)).status).toBe('completed');
    const before = await inspect<SunshineProfile[]>(h.sandbox.urls.sunshine, 'profiles');
    const gone = await removeFromSource(h, { share: 0.02, seed: 11 });
    expect(gone).toHaveLength(20);
    for (const t of TARGETS) h.sandbox.sims[t].resetCounters();

    const run = await backfill(engine, { kind: 'scheduled' });
    expect(run.status).toBe('completed');
    expect(run.targets.sunshine!.outcomes.removed).toBe(20);
    expect(run.targets.sunshine!.outcomes.orphaned).toBe(0);
    expect(run.targets.zephr!.outcomes.orphaned).toBe(20);
    expect(run.targets.zephr!.outcomes.removed).toBe(0);
    const after = await sunshineIds(h);
    for (const id of gone) expect(after.has(id)).toBe(false);
    expect(after.size).toBe(980);
    // The other 980 profiles are exactly as they were.
    const untouched = before.filter((p) => {
      const ext = p.identifiers.find((i) => i.type === 'external_id')?.value;
      return ext !== undefined && !gone.includes(ext);
    });
    const now = await inspect<SunshineProfile[]>(h.sandbox.urls.sunshine, 'profiles');
    expect(now).toEqual(expect.arrayContaining(untouched));
    expect(now).toHaveLength(980);
    // Only the removals were sent to Sunshine: a GET and a DELETE per user who left.
    const c = h.sandbox.sims.sunshine.counters();
    expect(c.byRoute['DELETE /api/v2/user_profiles/:profile_id']).toEqual({ '204': 20 });
    expect(writeCount(h.sandbox, 'sunshine')).toBe(20);
    expect(writeCount(h.sandbox, 'zephr')).toBe(0);
    // State dropped, so a user who comes back is created afresh.
    for (const s of await engine.state.getMany('sunshine', gone)) expect(s).toBeNull();
    const items = (await engine.runs.items(run.id)).filter((i) => i.outcome === 'removed');
    expect(items).toHaveLength(20);
    for (const i of items) {
      expect(i.requests.map((r) => r.method)).toEqual(['GET', 'DELETE']);
      expect(i.payload?.['identifiers.external_id']).toBe(i.userId);
    }
    // A third run finds nobody new to remove in Sunshine (state is gone) and writes nothing.
    for (const t of TARGETS) h.sandbox.sims[t].resetCounters();
    const third = await backfill(engine, { kind: 'scheduled' });
    expect(third.targets.sunshine!.outcomes.removed).toBe(0);
    expect(writeCount(h.sandbox, 'sunshine')).toBe(0);
  }, 120_000);

  it('a scan whose third page fails removes nobody', async () => {
    h = await startHarness({
      label: 'del-page-fails',
      sandbox: { users: 300 },
      env: { SUNSHINE_ON_DELETE: 'delete', SOURCE_PAGE_SIZE: '50' },
    });
    const engine = await h.engine({ only: ['sunshine'], settings: { chunkSize: 50 } });
    await engine.startWorkers({ concurrency: 8 });
    expect((await backfill(engine)).status).toBe('completed');
    // Users on every page leave, so a scan that stopped early would see many "missing" users.
    const gone = await removeFromSource(h, { share: 0.01, seed: 3 });
    expect(gone.length).toBe(3);
    h.sandbox.sims.source.setFaults([
      { kind: 'status', status: 503, match: { route: 'GET /user', query: { firstResult: '99' } } },
    ]);
    h.sandbox.sims.sunshine.resetCounters();
    const run = await backfill(engine, { kind: 'scheduled' });
    expect(run.status).toBe('failed');
    expect(run.scan).toMatchObject({ status: 'failed', complete: false });
    expect(run.targets.sunshine!.outcomes.removed).toBe(0);
    expect(run.targets.sunshine!.outcomes.orphaned).toBe(0);
    expect(run.deletions).toBeUndefined();
    expect(writeCount(h.sandbox, 'sunshine')).toBe(0);
    expect((await sunshineIds(h)).size).toBe(300);
    expect(await engine.state.count('sunshine')).toBe(300);
    // A limited run (--limit) never concludes anything either.
    h.sandbox.sims.source.setFaults([]);
    const limited = await backfill(engine, { kind: 'backfill', limit: 10 });
    expect(limited.status).toBe('completed');
    expect(limited.scan.complete).toBe(false);
    expect(limited.targets.sunshine!.outcomes.removed).toBe(0);
    expect(writeCount(h.sandbox, 'sunshine')).toBe(0);
  }, 120_000);
});
