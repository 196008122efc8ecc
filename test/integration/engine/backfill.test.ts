import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../../../src/queue/engine.js';
import {
  type Harness,
  inspect,
  mismatches,
  redisText,
  type SourceUserRow,
  startHarness,
  writeCount,
} from './harness.js';

describe('engine: backfill into the sandbox', () => {
  let h: Harness;
  let engine: Engine;

  beforeAll(async () => {
    h = await startHarness({ label: 'backfill' });
    engine = await h.engine();
    await engine.startWorkers({ concurrency: 8 });
  });
  afterAll(async () => {
    await h.close();
  });

  it('writes every user into every target, then a second run is all unchanged with no write', async () => {
    const runId = await runActions.startRun(engine, { kind: 'backfill' });
    const run = await runActions.waitForRun(engine, runId, { pollMs: 100 });
    expect(run.status).toBe('completed');
    expect(run.scan).toMatchObject({ status: 'done', complete: true, records: 200 });
    const users = await inspect<SourceUserRow[]>(h.sandbox.urls.source, 'users');
    for (const t of ['sunshine', 'zephr', 'prelude'] as const) {
      const o = run.targets[t]!.outcomes;
      expect(o.failed).toBe(0);
      expect(o.created + o.rejected + o.unlinked).toBe(users.length);
    }

    const unlinked = new Set(
      (await engine.runs.items(runId)).filter((i) => i.outcome === 'unlinked').map((i) => i.userId),
    );
    expect(unlinked.size).toBe(run.targets.prelude!.outcomes.unlinked);
    expect(await mismatches(h, { unlinked })).toEqual([]);
    // No secret reached Redis: not in job data, run records, state or BullMQ's own keys.
    const everything = await redisText(h.redis, h.prefix);
    expect(everything.length).toBeGreaterThan(10_000);
    for (const name of ['SOURCE_PASSWORD', 'SUNSHINE_API_TOKEN', 'ZEPHR_JWT_SECRET', 'PRELUDE_API_KEY']) {
      expect(everything).not.toContain(h.sandbox.env[name]!);
    }
    expect(everything).not.toMatch(/authorization|bearer|eyJ[A-Za-z0-9_-]{10,}\./i);

    for (const s of ['sunshine', 'zephr', 'prelude'] as const) h.sandbox.sims[s].resetCounters();
    const again = await runActions.waitForRun(
      engine,
      await runActions.startRun(engine, { kind: 'scheduled' }),
      { pollMs: 100 },
    );
    expect(again.status).toBe('completed');
    for (const t of ['sunshine', 'zephr', 'prelude'] as const) {
      const o = again.targets[t]!.outcomes;
      expect(o.unchanged + o.rejected + o.unlinked).toBe(users.length);
      expect(o.created + o.updated + o.failed).toBe(0);
      expect(again.targets[t]!.requests).toBe(0);
      expect(writeCount(h.sandbox, t)).toBe(0);
      expect(h.sandbox.sims[t].counters().total).toBe(0);
    }
    // Unlinked Prelude users are counted, not failed, and not probed again until UNLINKED_RECHECK.
    expect(again.targets.prelude!.outcomes.unlinked).toBe(unlinked.size);
    expect(again.targets.prelude!.outcomes.failed).toBe(0);
    await engine.close(); // its workers would take the scan with the default 24 h recheck
    const recheck = await h.engine({ only: ['prelude'], settings: { unlinkedRecheckMs: 0 } });
    await recheck.startWorkers({ concurrency: 4 });
    const third = await runActions.waitForRun(
      recheck,
      await runActions.startRun(recheck, { kind: 'scheduled' }),
      { pollMs: 100 },
    );
    expect(third.targets.prelude!.outcomes.unlinked).toBe(unlinked.size);
    // Past the recheck, the unlinked users are looked up again together (batch_lookup, 100 per
    // request: 33 users, one request), still not found, so no PATCH.
    expect(third.targets.prelude!.lookups).toBe(Math.ceil(unlinked.size / 100));
    expect(third.targets.prelude!.requests).toBe(third.targets.prelude!.lookups);
    expect(
      h.sandbox.sims.prelude.counters().byRoute['PATCH /v2/session/apps/:appID/users/:userID/profile'],
    ).toBeUndefined();
  }, 60_000);
});

import * as runActions from '../../../jobs/run-actions.js';
