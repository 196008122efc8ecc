import { afterEach, describe, expect, it } from 'vitest';
import * as runActions from '../../../jobs/run-actions.js';
import { type Harness, mismatches, startHarness } from './harness.js';

/**
 * Issue 11.1 end to end: what a first backfill costs per write in each write mode, counted by the
 * simulators themselves (their request counters), and an unchanged re-run that sends nothing.
 * Owned modes: exactly 1.0 request per write for Zephr and Sunshine; merge modes: at most 2.0.
 */
const USERS = 120;

async function firstBackfill(h: Harness) {
  const engine = await h.engine({ only: ['sunshine', 'zephr'] });
  await engine.startWorkers({ concurrency: 8 });
  for (const t of ['sunshine', 'zephr'] as const) h.sandbox.sims[t].resetCounters();
  const run = await runActions.waitForRun(engine, await runActions.startRun(engine, { kind: 'backfill' }), {
    pollMs: 100,
  });
  expect(run.status).toBe('completed');
  const perWrite: Record<string, number> = {};
  for (const t of ['sunshine', 'zephr'] as const) {
    const c = run.targets[t]!;
    const writes = c.outcomes.created + c.outcomes.updated;
    expect(c.outcomes.failed + c.outcomes.rejected).toBe(0);
    expect(writes).toBe(USERS);
    // The simulator's own count, not ours: both must agree.
    const sent = h.sandbox.sims[t].counters().total;
    expect(c.requests).toBe(sent);
    perWrite[t] = sent / writes;
  }
  for (const t of ['sunshine', 'zephr'] as const) h.sandbox.sims[t].resetCounters();
  const again = await runActions.waitForRun(
    engine,
    await runActions.startRun(engine, { kind: 'scheduled' }),
    { pollMs: 100 },
  );
  for (const t of ['sunshine', 'zephr'] as const) {
    expect(again.targets[t]!.outcomes.unchanged).toBe(USERS);
    expect(h.sandbox.sims[t].counters().total).toBe(0);
  }
  return perWrite;
}

describe('engine: requests per write by write mode (issue 11.1)', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('owned modes: a first backfill sends exactly 1.0 request per write to Zephr and Sunshine; a re-run 0', async () => {
    h = await startHarness({
      label: 'modes-owned',
      sandbox: { users: USERS },
      env: { ZEPHR_WRITE_MODE: 'owned', SUNSHINE_WRITE_MODE: 'owned' },
    });
    const perWrite = await firstBackfill(h);
    expect(perWrite).toEqual({ sunshine: 1, zephr: 1 });
    expect((await mismatches(h)).filter((m) => !m.startsWith('prelude'))).toEqual([]);
  }, 90_000);

  it('merge modes: at most 2.0 requests per write; a re-run 0', async () => {
    h = await startHarness({
      label: 'modes-merge',
      sandbox: { users: USERS },
      env: { ZEPHR_WRITE_MODE: 'merge', SUNSHINE_WRITE_MODE: 'merge' },
    });
    const perWrite = await firstBackfill(h);
    expect(perWrite.sunshine).toBeLessThanOrEqual(2);
    expect(perWrite.zephr).toBeLessThanOrEqual(2);
    expect((await mismatches(h)).filter((m) => !m.startsWith('prelude'))).toEqual([]);
  }, 90_000);
});
