import { afterEach, describe, expect, it } from 'vitest';
/**
 * Issue 8.1: the source changes while a scan pages through it (offset paging). Users removed from,
 * or inserted into, pages already read shift later users; no user still in the source may ever be
 * concluded gone, and each user is counted once.
 */
import * as runActions from '../../../jobs/run-actions.js';
import { createSourceConnector } from '../../../src/connectors/source/connector.js';
import type { SourceConnector } from '../../../src/connectors/types.js';
import { createLogger } from '../../../src/log.js';
import type { Engine } from '../../../src/queue/engine.js';
import { type Harness, inspect, inspectPost, startHarness } from '../engine/harness.js';

interface SunshineProfile {
  identifiers: { type: string; value: string }[];
  source: string;
  attributes?: Record<string, unknown>;
}

async function sunshineIds(h: Harness): Promise<Set<string>> {
  const all = await inspect<SunshineProfile[]>(h.sandbox.urls.sunshine, 'profiles');
  return new Set(
    all
      .filter((p) => p.source === 'identity')
      .map((p) => p.identifiers.find((i) => i.type === 'external_id')?.value)
      .filter((v): v is string => v !== undefined),
  );
}

async function sourceIds(h: Harness): Promise<string[]> {
  return (await inspect<{ id: string }[]>(h.sandbox.urls.source, 'users')).map((u) => u.id);
}

/** One-shot: right after the `afterPage`-th GET /user page from now, remove and/or add users. */
async function onPage(h: Harness, hook: { afterPage: number; remove?: string[]; add?: unknown[] }) {
  await inspectPost(h.sandbox.urls.source, 'users/on-page', hook);
}

async function backfill(
  engine: Engine,
  req: Parameters<typeof runActions.startRun>[1] = { kind: 'backfill' },
) {
  return runActions.waitForRun(engine, await runActions.startRun(engine, req), { pollMs: 100 });
}

const ENV = {
  SOURCE_PAGE_SIZE: '20',
  SUNSHINE_ON_DELETE: 'delete',
  ZEPHR_ON_DELETE: 'clear',
  PRELUDE_ON_DELETE: 'clear',
};

describe('source churn during a scan (issue 8.1)', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('users removed from a page already read: nobody still in the source is deleted', async () => {
    h = await startHarness({ label: 'churn-remove', sandbox: { users: 200 }, env: ENV });
    const engine = await h.engine({ settings: { chunkSize: 20 } });
    await engine.startWorkers({ concurrency: 8 });
    expect((await backfill(engine)).status).toBe('completed');
    const ids = await sourceIds(h);
    // After the second page (40 users read), two users of the first page leave: with plain offset
    // paging the third page then starts two users late and skips ids[40] and ids[41].
    const left = [ids[4]!, ids[5]!];
    await onPage(h, { afterPage: 2, remove: left });

    const run = await backfill(engine, { kind: 'scheduled' });
    expect(run.status).toBe('completed');
    expect(run.scan.complete).toBe(true);
    const live = await sourceIds(h);
    expect(live).toHaveLength(198);
    // Every user still in the source keeps their profile. The two who left were read by this scan
    // before they left (its first pass): they are removed by the next run, not this one.
    let sun = await sunshineIds(h);
    for (const id of live) expect(sun.has(id), `${id} is in the source`).toBe(true);
    expect(run.targets.sunshine!.outcomes.removed).toBe(0);
    expect(run.scan.restarts).toBe(1);
    const o = run.targets.sunshine!.outcomes;
    // Each user counted once although the restarted pass read the first pages again.
    expect(o.unchanged + o.created + o.updated + o.rejected).toBe(200);
    expect(run.scan.records).toBe(200);
    expect(run.scan.duplicates).toBe(38); // the 40 users of pages 1-2, less the two who left

    const next = await backfill(engine, { kind: 'scheduled' });
    expect(next.status).toBe('completed');
    expect(next.targets.sunshine!.outcomes.removed).toBe(2);
    expect(next.targets.zephr!.outcomes.removed).toBe(2);
    sun = await sunshineIds(h);
    for (const id of live) expect(sun.has(id), `${id} is in the source`).toBe(true);
    for (const id of left) expect(sun.has(id)).toBe(false);
    expect(sun.size).toBe(198);
  }, 120_000);

  it('users inserted before the read position (later users read twice): each counted once, nobody deleted', async () => {
    h = await startHarness({ label: 'churn-insert', sandbox: { users: 200 }, env: ENV });
    const engine = await h.engine({ settings: { chunkSize: 20 } });
    await engine.startWorkers({ concurrency: 8 });
    expect((await backfill(engine)).status).toBe('completed');
    const fresh = [
      { id: 'user-000000a', firstName: 'New', lastName: 'Comer', email: 'a@example.com' },
      { id: 'user-000000b', firstName: 'New', lastName: 'Comer', email: 'b@example.com' },
    ];
    await onPage(h, { afterPage: 2, add: fresh });

    const run = await backfill(engine, { kind: 'scheduled' });
    expect(run.status).toBe('completed');
    const o = run.targets.sunshine!.outcomes;
    // 200 known users once each, plus the two newcomers (read by the re-read pass).
    expect(o.unchanged).toBe(200);
    expect(o.created).toBe(2);
    expect(o.removed).toBe(0);
    expect(run.scan.records).toBe(202);
    expect((await sunshineIds(h)).size).toBe(202);
  }, 120_000);

  it('a list that keeps moving: the scan ends incomplete after its passes, nobody is removed', async () => {
    // One page ahead: the hooks below count list requests, three a pass (with more read-ahead a pass
    // also requests pages it never reads, and the hooks would fall elsewhere).
    h = await startHarness({
      label: 'churn-moving',
      sandbox: { users: 100 },
      env: { ...ENV, SOURCE_READ_AHEAD: '1' },
    });
    const engine = await h.engine({ settings: { chunkSize: 20 } });
    await engine.startWorkers({ concurrency: 8 });
    expect((await backfill(engine)).status).toBe('completed');
    const ids = await sourceIds(h);
    // Each pass: pages 1 and 2 read, then a user of page 1 leaves, so page 3 does not overlap.
    await onPage(h, { afterPage: 2, remove: [ids[1]!] });
    await onPage(h, { afterPage: 5, remove: [ids[2]!] });
    await onPage(h, { afterPage: 8, remove: [ids[3]!] });

    const run = await backfill(engine, { kind: 'scheduled' });
    expect(run.status).toBe('failed');
    expect(run.scan).toMatchObject({ status: 'failed', complete: false, restarts: 3 });
    expect(run.scan.error).toMatch(/moved/);
    expect(run.deletions).toBeUndefined();
    for (const t of ['sunshine', 'zephr', 'prelude'] as const)
      expect(run.targets[t]!.outcomes.removed).toBe(0);
    expect((await sunshineIds(h)).size).toBe(100);
  }, 120_000);

  it('a user the scan missed is found by the re-check, synced in the run, never removed', async () => {
    h = await startHarness({ label: 'churn-recheck', sandbox: { users: 100 }, env: ENV });
    const first = await h.engine({ settings: { chunkSize: 20 } });
    await first.startWorkers({ concurrency: 8 });
    expect((await backfill(first)).status).toBe('completed');
    await first.close();
    const ids = await sourceIds(h);
    const hidden = ids.slice(10, 13);
    // The user changes in the source; a scan that misses them must not conclude they left.
    await inspectPost(
      h.sandbox.urls.source,
      `users/${encodeURIComponent(hidden[0]!)}`,
      { firstName: 'Renamed' },
      'PATCH',
    );
    const logger = createLogger({ level: 'silent' });
    const real = createSourceConnector({ config: h.config.source, http: h.config.http }, { logger });
    // A scan (and count) that lie by omission, as one that lost users to a moving list would.
    const source: SourceConnector = Object.assign(Object.create(real) as SourceConnector, {
      scan: async function* (opts: Parameters<SourceConnector['scan']>[0]) {
        for await (const r of real.scan(opts)) if (!(r.ok && hidden.includes(r.user.id))) yield r;
      },
      count: async () => (await real.count()) - hidden.length,
    });
    const engine = await h.engine({ settings: { chunkSize: 20 }, source });
    await engine.startWorkers({ concurrency: 8 });
    const run = await backfill(engine, { kind: 'scheduled' });
    await real.close();
    expect(run.status).toBe('completed');
    expect(run.scan).toMatchObject({ complete: true, rechecked: 3, foundAgain: 3 });
    for (const t of ['sunshine', 'zephr'] as const) {
      expect(run.targets[t]!.outcomes.removed).toBe(0);
      expect(run.targets[t]!.outcomes.orphaned).toBe(0);
    }
    expect(run.deletions?.targets.sunshine?.gone).toBe(0);
    expect(run.targets.sunshine!.outcomes.updated).toBe(1);
    const sun = await inspect<SunshineProfile[]>(h.sandbox.urls.sunshine, 'profiles');
    const renamed = sun.find((p) => p.identifiers.some((i) => i.value === hidden[0]));
    expect(JSON.stringify(renamed)).toContain('Renamed');
    expect((await sunshineIds(h)).size).toBe(100);
  }, 120_000);

  it('a proxy answering 404 to the re-check: nobody is concluded gone, the run fails incomplete', async () => {
    h = await startHarness({ label: 'churn-404', sandbox: { users: 60 }, env: ENV });
    const engine = await h.engine({ settings: { chunkSize: 20 } });
    await engine.startWorkers({ concurrency: 8 });
    expect((await backfill(engine)).status).toBe('completed');
    const ids = await sourceIds(h);
    await inspectPost(h.sandbox.urls.source, 'users/remove', { ids: [ids[3], ids[30]] });
    // Only the re-check's lookup (2 candidates + 1 canary) is answered 404, as by a broken proxy.
    h.sandbox.sims.source.setFaults([
      {
        kind: 'status',
        status: 404,
        match: { route: 'GET /user', query: { firstResult: '0', maxResults: '3' } },
      },
    ]);
    const run = await backfill(engine, { kind: 'scheduled' });
    expect(run.status).toBe('failed');
    expect(run.scan).toMatchObject({ status: 'failed', complete: false });
    expect(run.scan.error).toMatch(/deletion detection failed/);
    for (const t of ['sunshine', 'zephr', 'prelude'] as const)
      expect(run.targets[t]!.outcomes.removed).toBe(0);
    expect((await sunshineIds(h)).size).toBe(60);
  }, 120_000);

  it('a source answering every re-check with an empty list (no canary): nobody is concluded gone', async () => {
    h = await startHarness({ label: 'churn-empty', sandbox: { users: 60 }, env: ENV });
    const first = await h.engine({ settings: { chunkSize: 20 } });
    await first.startWorkers({ concurrency: 8 });
    expect((await backfill(first)).status).toBe('completed');
    await first.close();
    const ids = await sourceIds(h);
    await inspectPost(h.sandbox.urls.source, 'users/remove', { ids: [ids[3], ids[30]] });
    const logger = createLogger({ level: 'silent' });
    const real = createSourceConnector({ config: h.config.source, http: h.config.http }, { logger });
    const source: SourceConnector = Object.assign(Object.create(real) as SourceConnector, {
      getUsers: async () => new Map(),
    });
    const engine = await h.engine({ settings: { chunkSize: 20 }, source });
    await engine.startWorkers({ concurrency: 8 });
    const run = await backfill(engine, { kind: 'scheduled' });
    await real.close();
    expect(run.status).toBe('failed');
    expect(run.scan.error).toMatch(/does not answer sanely/);
    for (const t of ['sunshine', 'zephr', 'prelude'] as const)
      expect(run.targets[t]!.outcomes.removed).toBe(0);
    expect((await sunshineIds(h)).size).toBe(60);
  }, 120_000);

  it('--confirm-deletes against a source answering 404 to everything removes nobody; the run stays held', async () => {
    h = await startHarness({
      label: 'churn-confirm-404',
      sandbox: { users: 50 },
      env: { SUNSHINE_ON_DELETE: 'delete', MAX_DELETES: '0' },
    });
    const engine = await h.engine({ only: ['sunshine'] });
    await engine.startWorkers({ concurrency: 8 });
    expect((await backfill(engine)).status).toBe('completed');
    const ids = await sourceIds(h);
    await inspectPost(h.sandbox.urls.source, 'users/remove', { ids: ids.slice(0, 3) });
    const held = await backfill(engine, { kind: 'scheduled' });
    expect(held.status).toBe('held');
    expect(held.deletions?.targets.sunshine?.gone).toBe(3);
    // Every request answered 404 now: a per-user re-check would read that as "all three still gone".
    h.sandbox.sims.source.setFaults([{ kind: 'status', status: 404 }]);
    await expect(runActions.confirmDeletes(engine, held.id)).rejects.toThrow(/404/);
    expect((await engine.runs.get(held.id))?.status).toBe('held');
    expect((await sunshineIds(h)).size).toBe(50);
    // The source answers again: confirming removes exactly the three.
    h.sandbox.sims.source.setFaults([]);
    const confirmed = await runActions.confirmDeletes(engine, held.id);
    expect(confirmed).toMatchObject({ removals: 3, returned: 0 });
    const done = await runActions.waitForRun(engine, held.id, { pollMs: 100 });
    expect(done.targets.sunshine!.outcomes.removed).toBe(3);
    expect((await sunshineIds(h)).size).toBe(47);
  }, 120_000);
});
