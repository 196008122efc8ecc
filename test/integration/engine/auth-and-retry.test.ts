import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.js';
import { createLogger } from '../../../src/log.js';
import { Engine } from '../../../src/queue/engine.js';
import { until } from './e2e-helpers.js';
import { type Harness, inspect, startHarness } from './harness.js';

describe('engine: auth failure stops a target; retry-failed re-drives the dead letters', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('401 stops the target without hammering it; after fixing credentials the dead letters replay without duplicates', async () => {
    h = await startHarness({
      label: 'auth',
      sandbox: { users: 60 },
      env: { SUNSHINE_API_TOKEN: 'wrong-token' },
    });
    const bad = await h.engine({ only: ['sunshine'] });
    await bad.startWorkers({ concurrency: 4 });
    const run = await runActions.waitForRun(bad, await runActions.startRun(bad, { kind: 'backfill' }), {
      pollMs: 100,
    });
    const s = run.targets.sunshine!;
    expect(s.stopped).toMatch(/E_AUTH/);
    expect(s.outcomes.failed).toBe(60);
    // Only the jobs already in flight when the first 401 came back reached the vendor.
    const sent = h.sandbox.sims.sunshine.counters().total;
    expect(sent).toBeLessThanOrEqual(8);
    expect(s.requests).toBe(sent);
    // Every job is a dead letter with its error. A job records its outcome just before BullMQ moves
    // it to the failed set, so the last one may still be on its way when the run is over.
    await until('60 dead letters', async () => (await bad.syncQueues.sunshine!.getFailedCount()) >= 60);
    const failed = await bad.syncQueues.sunshine!.getFailed(0, 100);
    expect(failed).toHaveLength(60);
    expect(failed.every((j) => /E_AUTH|E_TARGET_STOPPED|stopped/.test(j.failedReason))).toBe(true);
    await bad.close();

    // Credentials fixed: re-drive them.
    const config = loadConfig({ ...h.env, SUNSHINE_API_TOKEN: h.sandbox.env.SUNSHINE_API_TOKEN! });
    const good = await Engine.create({
      jobs: JOBS,
      config,
      only: ['sunshine'],
      logger: createLogger({ level: 'silent' }),
    });
    try {
      await good.startWorkers({ concurrency: 4 });
      const retry = await runActions.retryFailed(good, { runId: run.id, target: 'sunshine' });
      expect(retry.jobs).toBe(60);
      const redo = await runActions.waitForRun(good, retry.runId!, { pollMs: 100 });
      expect(redo.kind).toBe('retry');
      expect(redo.options.retryOf).toBe(run.id);
      expect(redo.targets.sunshine!.outcomes.created).toBe(60);
      expect(await good.syncQueues.sunshine!.getFailedCount()).toBe(0);
      // Replaying again (the same users, e.g. a double retry) never duplicates a profile.
      await good.state.remove('sunshine', 'user-000001');
      const again = await runActions.waitForRun(
        good,
        await runActions.startRun(good, { kind: 'single-user', users: ['user-000001'] }),
        { pollMs: 100 },
      );
      expect(again.targets.sunshine!.outcomes.failed).toBe(0);
      const state = await inspect<{ profiles: { identifiers: { type: string; value: string }[] }[] }>(
        h.sandbox.urls.sunshine,
        'state',
      );
      const ext = state.profiles.map((p) => p.identifiers.find((i) => i.type === 'external_id')?.value);
      expect(ext).toHaveLength(60);
      expect(new Set(ext).size).toBe(60);
      // Nothing left to retry.
      expect((await runActions.retryFailed(good, { runId: run.id })).jobs).toBe(0);
    } finally {
      await good.close();
    }
  }, 60_000);
});

import { JOBS } from '../../../jobs/index.js';
import * as runActions from '../../../jobs/run-actions.js';
