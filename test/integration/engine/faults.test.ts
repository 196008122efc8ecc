import { afterEach, describe, expect, it, vi } from 'vitest';
import * as runActions from '../../../jobs/run-actions.js';
import { type Harness, mismatches, startHarness, writeCount } from './harness.js';

const TARGETS = ['sunshine', 'zephr', 'prelude'] as const;

describe('engine under faults', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('2,000 users, 10% injected 5xx and connection resets: every user ends correct in every target, retries recorded', async () => {
    h = await startHarness({ label: 'faults', sandbox: { users: 2000 } });
    for (const t of TARGETS) {
      h.sandbox.sims[t].setFaults([
        { kind: 'status', status: 503, rate: 0.05 },
        { kind: 'reset', rate: 0.05 },
      ]);
    }
    const engine = await h.engine();
    await engine.startWorkers({ concurrency: 8 });
    const run = await runActions.waitForRun(engine, await runActions.startRun(engine, { kind: 'backfill' }), {
      pollMs: 100,
    });
    expect(run.status).toBe('completed');
    for (const t of TARGETS) expect(run.targets[t]!.outcomes.failed).toBe(0);
    // Prelude's PATCH is not idempotent, so its faults come back to the job: retried with backoff.
    const retries = TARGETS.reduce((n, t) => n + run.targets[t]!.retries, 0);
    expect(retries).toBeGreaterThan(0);
    const items = await engine.runs.items(run.id, 0, await engine.runs.itemCount(run.id));
    const retried = items.filter((i) => (i.tries?.length ?? 0) > 0);
    expect(retried.reduce((n, i) => n + i.tries!.length, 0)).toBe(retries);
    for (const i of retried) {
      expect(i.attempts).toBe(i.tries!.length + 1);
      expect(i.tries![0]!.error.code).toBe('E_TRANSIENT');
    }

    for (const t of TARGETS) h.sandbox.sims[t].setFaults([]);
    const unlinked = new Set(items.filter((i) => i.outcome === 'unlinked').map((i) => i.userId));
    expect(await mismatches(h, { unlinked })).toEqual([]);

    for (const t of TARGETS) h.sandbox.sims[t].resetCounters();
    const again = await runActions.waitForRun(
      engine,
      await runActions.startRun(engine, { kind: 'scheduled' }),
      { pollMs: 100 },
    );
    for (const t of TARGETS) {
      expect(again.targets[t]!.outcomes.created + again.targets[t]!.outcomes.updated).toBe(0);
      expect(writeCount(h.sandbox, t)).toBe(0);
    }
  }, 300_000);

  it('429 from a tight vendor limit pauses the whole queue for Retry-After without spending an attempt', async () => {
    h = await startHarness({ label: 'ratelimited', sandbox: { users: 20 } });
    h.sandbox.sims.zephr.setRateLimit({ perMinute: 1200, burst: 5 });
    const engine = await h.engine({ only: ['zephr'] });
    const pause = vi.spyOn(engine.syncQueues.zephr!, 'rateLimit');
    await engine.startWorkers({ concurrency: 4 });
    const run = await runActions.waitForRun(engine, await runActions.startRun(engine, { kind: 'backfill' }), {
      pollMs: 100,
    });
    expect(run.status).toBe('completed');
    const z = run.targets.zephr!;
    expect(z.outcomes.created).toBe(20);
    expect(z.outcomes.failed).toBe(0);
    expect(z.rateLimited).toBeGreaterThan(0);
    // The queue (every worker of it) was paused for the vendor's Retry-After, in ms.
    expect(pause).toHaveBeenCalled();
    for (const [ms] of pause.mock.calls) expect(ms).toBeGreaterThanOrEqual(1000);
    // No attempt was spent on a 429: every job succeeded on its first attempt.
    const items = await engine.runs.items(run.id);
    expect(items).toHaveLength(20);
    for (const i of items) {
      expect(i.attempts).toBe(1);
      expect(i.tries).toBeUndefined();
    }
    const log = h.sandbox.sims.zephr.requests(0);
    expect(log.filter((r) => r.status === 429).length).toBe(z.rateLimited);
  }, 120_000);
});
