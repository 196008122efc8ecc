import { afterEach, describe, expect, it } from 'vitest';
import * as runActions from '../../../jobs/run-actions.js';
import { type Harness, startHarness } from './harness.js';

const TARGETS = ['sunshine', 'zephr', 'prelude'] as const;

describe('engine: the source scan', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('a page that fails once is retried from the checkpoint; every user is counted exactly once', async () => {
    h = await startHarness({
      label: 'scan-resume',
      sandbox: { users: 200 },
      env: { SOURCE_PAGE_SIZE: '50' },
    });
    // The third page fails on its first try and its two HTTP-level retries: the scan job attempt fails.
    h.sandbox.sims.source.setFaults([
      {
        kind: 'status',
        status: 503,
        rate: 1,
        times: 3,
        match: { route: 'GET /user', query: { firstResult: '99' } },
      },
    ]);
    const engine = await h.engine({ settings: { chunkSize: 50 } });
    await engine.startWorkers({ concurrency: 8 });
    const run = await runActions.waitForRun(engine, await runActions.startRun(engine, { kind: 'backfill' }), {
      pollMs: 100,
    });
    expect(run.status).toBe('completed');
    expect(run.scan).toMatchObject({ status: 'done', complete: true });
    const pages = h.sandbox.sims.source.requests(0).filter((r) => r.route === 'GET /user');
    // Page 3 failed three times (first try + two HTTP retries), then the scan job's retry re-read the
    // source from the start and skipped the checkpointed records: without the checkpoint the users
    // of pages 1-2 would be counted again (as unchanged, their jobs having run) and the sums below break.
    expect(pages.filter((r) => r.status === 503)).toHaveLength(3);
    for (const t of TARGETS) {
      const o = run.targets[t]!.outcomes;
      expect(o.created + o.unlinked + o.rejected + o.unchanged).toBe(200);
      expect(o.failed).toBe(0);
    }
    expect(run.enqueued).toBe(run.settled);
  }, 60_000);

  it('a scan that keeps failing ends the run as failed and incomplete', async () => {
    h = await startHarness({ label: 'scan-fail', sandbox: { users: 120 }, env: { SOURCE_PAGE_SIZE: '50' } });
    h.sandbox.sims.source.setFaults([
      { kind: 'status', status: 503, rate: 1, match: { route: 'GET /user', query: { firstResult: '99' } } },
    ]);
    const engine = await h.engine({ settings: { chunkSize: 50 } });
    await engine.startWorkers({ concurrency: 8 });
    const run = await runActions.waitForRun(
      engine,
      await runActions.startRun(engine, { kind: 'scheduled' }),
      { pollMs: 100 },
    );
    expect(run.status).toBe('failed');
    expect(run.scan).toMatchObject({ status: 'failed', complete: false, records: 100 });
    expect(run.scan.error).toMatch(/503|source/i);
    // What was read before the failure was still synced.
    expect(run.targets.zephr!.outcomes.created).toBe(100);
  }, 60_000);

  it('a page that fails for good after pages smaller than a chunk: the records read are processed and counted (issue 8.12)', async () => {
    h = await startHarness({
      label: 'scan-fail-chunk',
      sandbox: { users: 120 },
      env: { SOURCE_PAGE_SIZE: '50' },
    });
    h.sandbox.sims.source.setFaults([
      { kind: 'status', status: 503, rate: 1, match: { route: 'GET /user', query: { firstResult: '99' } } },
    ]);
    // A chunk (500) larger than what was read before the failure (100): nothing was flushed yet.
    const engine = await h.engine({ settings: { chunkSize: 500 } });
    await engine.startWorkers({ concurrency: 8 });
    const run = await runActions.waitForRun(
      engine,
      await runActions.startRun(engine, { kind: 'scheduled' }),
      { pollMs: 100 },
    );
    expect(run.status).toBe('failed');
    expect(run.scan).toMatchObject({ status: 'failed', complete: false, records: 100 });
    expect(run.targets.zephr!.outcomes.created).toBe(100);
  }, 60_000);
});
