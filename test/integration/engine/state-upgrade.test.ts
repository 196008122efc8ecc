import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as runActions from '../../../jobs/run-actions.js';
import { hashFields } from '../../../src/core/hashing.js';
import type { FieldMap } from '../../../src/core/types.js';
import type { Engine } from '../../../src/queue/engine.js';
import { type Harness, inspectPost, mismatches, startHarness } from './harness.js';

const TARGETS = ['sunshine', 'zephr', 'prelude'] as const;

/**
 * Issue 11.4: an install upgraded from the v1 state format (`{"h":sha256,"f":payload,"t":ms}` per
 * user and target) must not see every user as changed, nor lose the diff base of the next write.
 */
describe('engine: state written in the v1 format (before issue 11.4)', () => {
  let h: Harness;
  let engine: Engine;
  let unlinked: Set<string>;

  const run = async (e: Engine) =>
    runActions.waitForRun(e, await runActions.startRun(e, { kind: 'scheduled' }), { pollMs: 100 });
  const requests = () => TARGETS.reduce((n, t) => n + h.sandbox.sims[t].counters().total, 0);
  const resetCounters = () => {
    for (const t of TARGETS) h.sandbox.sims[t].resetCounters();
  };

  beforeAll(async () => {
    h = await startHarness({ label: 'stateupgrade' });
    const first = await h.engine();
    await first.startWorkers({ concurrency: 8 });
    const backfill = await runActions.waitForRun(
      first,
      await runActions.startRun(first, { kind: 'backfill' }),
      { pollMs: 100 },
    );
    expect(backfill.status).toBe('completed');
    unlinked = new Set(
      (await first.runs.items(backfill.id)).filter((i) => i.outcome === 'unlinked').map((i) => i.userId),
    );
    // Turn the state into what the v1 code wrote, then start a fresh (upgraded) process on it.
    const layout = first.runs.backing().layout;
    for (const t of TARGETS) {
      const v1: string[] = [];
      for await (const { userId, state } of first.state.users(t)) {
        const fields: FieldMap = { ...state.fields };
        v1.push(userId, JSON.stringify({ h: hashFields(fields), f: fields, t: state.writtenAt }));
      }
      expect(v1.length / 2).toBe(t === 'prelude' ? 200 - unlinked.size : 200);
      await h.redis.hset(layout.state(t), ...v1);
      await h.redis.del(layout.stateKeys(t));
    }
    await first.close();
    engine = await h.engine();
    await engine.startWorkers({ concurrency: 8 });
  });
  afterAll(async () => {
    await h.close();
  });

  it('the first run after the upgrade sends no request and rewrites every value as v2', async () => {
    resetCounters();
    const r = await run(engine);
    expect(r.status).toBe('completed');
    expect(requests()).toBe(0);
    // Decided by the scan: not one sync job (a job would find no diff and send nothing, hiding a miss).
    expect(r.enqueued).toBe(0);
    expect(r.targets.sunshine!.outcomes.unchanged).toBe(200);
    expect(r.targets.zephr!.outcomes.unchanged).toBe(200);
    expect(r.targets.prelude!.outcomes.unchanged).toBe(200 - unlinked.size);
    const layout = engine.runs.backing().layout;
    for (const t of TARGETS) {
      const values = Object.values(await h.redis.hgetall(layout.state(t)));
      expect(values.filter((v) => v.startsWith('{'))).toEqual([]);
      expect(await h.redis.hlen(layout.stateKeys(t))).toBeGreaterThan(0);
    }
    // And the next unchanged run, on v2 values, sends none either.
    const again = await run(engine);
    expect(again.targets.sunshine!.outcomes.unchanged).toBe(200);
    expect(again.enqueued).toBe(0);
    expect(requests()).toBe(0);
  });

  it('keeps the diff base: changed users are updated (not created) and end exactly right', async () => {
    const { changed } = await inspectPost<{ changed: string[] }>(h.sandbox.urls.source, 'users/mutate', {
      share: 0.1,
      seed: 11,
      fields: ['firstName', 'email'],
    });
    expect(changed).toHaveLength(20);
    const r = await run(engine);
    expect(r.status).toBe('completed');
    for (const t of ['sunshine', 'zephr'] as const) {
      expect(r.targets[t]!.outcomes.updated).toBe(20);
      expect(r.targets[t]!.outcomes.created).toBe(0);
      expect(r.targets[t]!.outcomes.unchanged).toBe(180);
    }
    const items = await engine.runs.items(r.id);
    for (const i of items.filter((x) => x.outcome === 'updated'))
      expect(Object.values(i.diff ?? {}).every((d) => d.from !== undefined || d.to !== undefined)).toBe(true);
    expect(await mismatches(h, { unlinked })).toEqual([]);
  });
});
