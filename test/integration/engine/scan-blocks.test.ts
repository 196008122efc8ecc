import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as runActions from '../../../jobs/run-actions.js';
import { blockSetup, readWithBlocks } from '../../../jobs/scan-blocks.js';
import { TARGET_IDS } from '../../../src/core/targets.js';
import type { SourceRecord } from '../../../src/core/types.js';
import { forgetUser } from '../../../src/pipeline/erasure.js';
import type { Engine } from '../../../src/queue/engine.js';
import { RedisLayout } from '../../../src/store/redis-layout.js';
import type { RunOptions, RunRecord } from '../../../src/store/run-record.js';
import { type Harness, inspect, inspectPost, type SourceUserRow, startHarness } from './harness.js';

const TARGETS = ['sunshine', 'zephr', 'prelude'] as const;

/**
 * Issue 11 (the unchanged re-run): block conclusions (jobs/scan-blocks.ts). A scan that finds a block
 * of users unchanged concludes it; the next scan counts those users without reading their states, and
 * must still see every change: in the source, and of the targets' states behind its back (a write the
 * scan did not decide, a counter string deleted).
 */
describe('engine: block conclusions of the scan', () => {
  let h: Harness;
  let engine: Engine;
  let layout: RedisLayout;
  let users: SourceUserRow[];

  async function run(kind: 'scheduled' | 'backfill' = 'scheduled'): Promise<RunRecord> {
    const r = await runActions.waitForRun(engine, await runActions.startRun(engine, { kind }), {
      pollMs: 50,
    });
    expect(r.status).toBe('completed');
    return r;
  }
  const outcomes = (r: RunRecord) => TARGETS.map((t) => ({ t, ...r.targets[t]!.outcomes }));
  const requests = () => TARGETS.reduce((n, t) => n + h.sandbox.sims[t].counters().total, 0);
  /** A run that concludes what the last one wrote, then one that must trust every user. */
  async function steady(): Promise<RunRecord> {
    await run();
    const r = await run();
    expect(r.scan?.trusted).toBe(300);
    return r;
  }
  async function patchSource(id: string, fields: Record<string, unknown>) {
    await inspectPost(h.sandbox.urls.source, `users/${encodeURIComponent(id)}`, fields, 'PATCH');
  }

  beforeAll(async () => {
    h = await startHarness({ label: 'blocks', sandbox: { users: 300 } });
    // Chunks of 40 users (8 a scan): blocks end at a chunk's end too, and a chunk after one that
    // trusted few of its users reads every state with the conclusions (the eager read).
    engine = await h.engine({ settings: { chunkSize: 40 } });
    layout = new RedisLayout(h.prefix);
    await engine.startWorkers({ concurrency: 8 });
    await run('backfill');
    users = await inspect<SourceUserRow[]>(h.sandbox.urls.source, 'users');
  });
  afterAll(async () => {
    await h.close();
  });

  it('concludes on the first unchanged re-run and trusts the conclusions on the next, with the same counts', async () => {
    const first = await run();
    expect(first.scan?.trusted).toBe(0);
    expect(first.scan?.concluded).toBeGreaterThan(2);
    expect(await h.redis.hlen(layout.scanBlocks())).toBe(first.scan?.concluded);
    const before = requests();
    const second = await run();
    expect(second.scan?.trusted).toBe(300); // every user, no state read
    expect(second.scan?.concluded).toBe(0);
    expect(outcomes(second)).toEqual(outcomes(first));
    expect(requests()).toBe(before);
    // The deletion detection's fast path still counts every known user (nobody left).
    for (const t of TARGETS) expect(second.targets[t]!.outcomes.removed ?? 0).toBe(0);
    // Prelude's unlinked markers: each one a user both scans read (the first from the markers it
    // read, the second from its conclusions' codes), so none is compared.
    expect(second.targets.prelude!.outcomes.unlinked).toBeGreaterThan(0);
    expect(first.deletions?.unlinkedMarkers).toEqual({ dropped: 0, compared: false });
    expect(second.deletions?.unlinkedMarkers).toEqual({ dropped: 0, compared: false });
  });

  it('an unlinked marker of a user who is not in the source: compared and dropped, then the fast path again', async () => {
    await steady();
    await engine.jobContext().state.markUnlinked('prelude', 'stranger', { first_name: 'S' });
    const r = await run();
    expect(r.deletions?.unlinkedMarkers).toEqual({ dropped: 1, compared: true });
    expect(await h.redis.hexists(layout.unlinked('prelude'), 'stranger')).toBe(0);
    expect((await run()).deletions?.unlinkedMarkers).toEqual({ dropped: 0, compared: false });
  });

  it('sees a change in the source: only its block is compared, the user is written', async () => {
    const user = users[100]!;
    await patchSource(user.id, { lastName: 'Blockchanged' });
    const r = await run();
    expect(r.scan?.trusted).toBeGreaterThan(0);
    expect(r.scan?.trusted).toBeLessThan(300);
    for (const t of ['sunshine', 'zephr'] as const) expect(r.targets[t]!.outcomes.updated).toBe(1);
    const items = await engine.runs.items(r.id);
    expect(items.filter((i) => i.outcome === 'updated').map((i) => i.userId)).toContain(user.id);
    // The next re-run compares its block once more (written since: its counters moved) and concludes
    // it; the one after trusts everyone.
    const next = await run();
    expect(next.scan?.trusted).toBeLessThan(300);
    expect(next.scan?.concluded).toBeGreaterThan(0);
    for (const t of TARGETS) expect(next.targets[t]!.outcomes.updated ?? 0).toBe(0);
    await steady();
  });

  it('a chunk read eagerly (every state at once) answers exactly what the read after the conclusions does', async () => {
    await steady();
    for (const u of [users[5]!, users[150]!]) await patchSource(u.id, { lastName: 'Eager' });
    // The whole source as one chunk: most blocks trusted, two not.
    const records: SourceRecord[] = [];
    for await (const r of engine.source().scan({ pageSize: 100 })) records.push(r);
    const recIds = records.map((r) => (r.ok ? r.user.id : r.userId));
    const ctx = engine.jobContext();
    const opts = { targets: [...TARGETS], dryRun: false, full: false } as unknown as RunOptions;
    const setup = blockSetup(ctx, opts, [...TARGETS], false)!;
    const read = (eager: boolean) =>
      readWithBlocks(
        ctx,
        opts,
        [...TARGETS],
        records,
        recIds,
        `{${h.prefix}}:eager-seen`,
        undefined,
        setup,
        eager,
      );
    const lazy = await read(false);
    const eager = await read(true);
    expect(lazy.trusted).toBeGreaterThan(0);
    expect(lazy.slow.length).toBeGreaterThan(1);
    expect(eager.slow).toEqual(lazy.slow);
    expect(eager.read.states).toEqual(lazy.read.states);
    expect(eager.read.unlinked).toEqual(lazy.read.unlinked);
    expect(eager.stated).toEqual(lazy.stated);
    expect(eager.counters).toEqual(lazy.counters);
    await run(); // writes the two users
    await steady();
  });

  it('sees a write the scan did not decide: the user is compared again when its source is back as concluded', async () => {
    // The block of this user is concluded with its source as it is now (C0). A single-user sync then
    // writes another value (C1) into Zephr, and the source goes back to C0: the block's digest is the
    // concluded one, but Zephr holds C1. The write bumped the user's mutation counter (in the settle
    // call), so the conclusion no longer holds, and the re-run writes C0 back.
    const user = users[200]!;
    await steady();
    await patchSource(user.id, { firstName: 'Interim' });
    const single = await runActions.waitForRun(
      engine,
      await runActions.startRun(engine, { kind: 'single-user', users: [user.id], targets: ['zephr'] }),
      { pollMs: 50 },
    );
    expect(single.targets.zephr!.outcomes.updated).toBe(1);
    await patchSource(user.id, { firstName: user.firstName ?? null });
    const r = await run();
    expect(r.scan?.trusted).toBeLessThan(300);
    expect(r.targets.zephr!.outcomes.updated).toBe(1);
    expect(r.targets.sunshine!.outcomes.updated ?? 0).toBe(0);
    const items = await engine.runs.items(r.id);
    expect(items.find((i) => i.userId === user.id && i.target === 'zephr')?.outcome).toBe('updated');
  });

  it('drops every conclusion when the mutation counters are gone (their epoch)', async () => {
    await steady();
    await h.redis.del(layout.mutations());
    const r = await run();
    expect(r.scan?.trusted).toBe(0);
    expect(r.scan?.concluded).toBeGreaterThan(2);
    expect((await run()).scan?.trusted).toBe(300);
    // Concluded with every counter at 0. A write behind the scan's back bumps one; the counters are
    // deleted again, so the sums are 0 as concluded: only the epoch tells the conclusion is stale.
    const user = users[150]!;
    await patchSource(user.id, { lastName: 'Interim' });
    await runActions.waitForRun(
      engine,
      await runActions.startRun(engine, { kind: 'single-user', users: [user.id] }),
      { pollMs: 50 },
    );
    await patchSource(user.id, { lastName: user.lastName ?? null });
    await h.redis.del(layout.mutations());
    const after = await run();
    expect(after.scan?.trusted).toBe(0);
    expect(after.targets.zephr!.outcomes.updated).toBe(1);
  });

  it('a write the scan did not decide behind a trusted block: forget, then the user is created again', async () => {
    await steady();
    const user = users[250]!;
    await forgetUser(engine.erasureDeps(), user.id, [...TARGET_IDS]);
    const r = await run();
    expect(r.targets.zephr!.outcomes.created).toBe(1);
  });

  it('a dry run and a --full run neither trust nor conclude', async () => {
    await steady();
    const dry = await runActions.waitForRun(
      engine,
      await runActions.startRun(engine, { kind: 'scheduled', dryRun: true }),
      { pollMs: 50 },
    );
    expect(dry.scan?.trusted).toBeUndefined();
    const full = await runActions.waitForRun(
      engine,
      await runActions.startRun(engine, { kind: 'scheduled', full: true }),
      { pollMs: 50 },
    );
    expect(full.scan?.trusted).toBeUndefined();
    // --full rewrote every state (each write bumps its user's counter): the next re-run compares
    // everyone and concludes again.
    expect((await run()).scan?.trusted).toBe(0);
    await steady();
  });
});
