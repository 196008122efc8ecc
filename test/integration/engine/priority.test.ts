import { afterEach, describe, expect, it } from 'vitest';
import { until } from './e2e-helpers.js';
import { type Harness, startHarness } from './harness.js';

describe('engine: priority lanes', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('a single-user sync goes ahead of a running backfill in the same target queue', async () => {
    // 5 jobs per second: the 60-user backfill takes ~12 s of rate budget.
    h = await startHarness({
      label: 'priority',
      sandbox: { users: 60 },
      env: { PRELUDE_RATE_LIMIT: '5', PROFILE_SYNC_TEST_RATE_WINDOW_MS: '1000', RATE_LIMIT_MARGIN_MS: '0' },
    });
    const engine = await h.engine({ only: ['prelude'] });
    await engine.startWorkers({ concurrency: 1 });
    const backfill = await runActions.startRun(engine, { kind: 'backfill' });
    // Wait until the whole backfill is enqueued and has started writing.
    await until('the backfill enqueued and writing', async () => {
      const r = await engine.runs.get(backfill);
      return r?.scan.status === 'done' && r.settled > 0;
    });
    const single = await runActions.startRun(engine, { kind: 'single-user', users: ['user-000060'] });
    const done = await runActions.waitForRun(engine, single, { pollMs: 50 });
    expect(done.status).toBe('completed');
    const during = (await engine.runs.get(backfill))!;
    // FIFO would have made it wait behind ~60 backfill jobs; the priority lane takes the next free slot.
    expect(during.status).toBe('running');
    expect(during.settled).toBeLessThan(30);
    // Aborting drops the jobs that have not started (they would each wait for the rate budget just to skip).
    await runActions.abortRun(engine, backfill, 'test over');
    const aborted = await runActions.waitForRun(engine, backfill, { pollMs: 50 });
    expect(aborted.status).toBe('aborted');
    const p = aborted.targets.prelude!;
    expect(p.skipped).toBeGreaterThan(20);
    expect(p.skipped + Object.values(p.outcomes).reduce((a, b) => a + b, 0)).toBe(60);
    expect(await engine.syncQueues.prelude!.getWaitingCount()).toBe(0);
    expect(await engine.syncQueues.prelude!.getPrioritizedCount()).toBe(0);
  }, 60_000);
});

import * as runActions from '../../../jobs/run-actions.js';
