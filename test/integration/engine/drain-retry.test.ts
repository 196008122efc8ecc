import { Worker } from 'bullmq';
import { afterEach, describe, expect, it } from 'vitest';
import * as syncJob from '../../../jobs/sync.js';
import * as steps from '../../../jobs/user-steps.js';
import { redisClient } from '../../helpers/redis.js';
import { type Harness, startHarness } from './harness.js';

/**
 * Issue 8.8: `drainRun` removes every not-started job of an aborted run, however many other jobs
 * wait before them; `retryFailed` validates the dead letters before it creates (and marks running)
 * the retry run: a malformed one is reported and skipped, never leaves a run `running` for ever.
 */
describe('drainRun and retryFailed', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  const payload = (runId: string, userId: string) => ({
    runId,
    target: 'zephr' as const,
    userId,
    user: { id: userId, firstName: 'A', lastName: 'B', email: null },
    full: false,
  });

  it("drainRun removes all of the aborted run's waiting jobs, even behind 1,000+ jobs of another run", async () => {
    h = await startHarness({ label: 'drain', sandbox: { users: 1 } });
    const engine = await h.engine(); // no workers: every job stays waiting
    const q = engine.syncQueues.zephr!;
    const other = 'other-run';
    const runId = await engine.runs.create('backfill', {
      targets: ['zephr'],
      dryRun: false,
      full: false,
      showPii: false,
      plan: false,
    });
    const add = async (run: string, n: number, from = 0) => {
      const specs = Array.from({ length: n }, (_, i) => {
        const data = payload(run, `u-${run}-${from + i}`);
        return { name: syncJob.name, data, opts: { jobId: syncJob.jobId('zephr', run, data.userId) } };
      });
      await q.addBulk(specs);
      return specs.map((s) => steps.settleMember('zephr', s.data.userId));
    };
    // The run's jobs are the oldest; 1,200 newer jobs of another run fill the first page of a
    // newest-first read (BullMQ's default order), whichever end a reader starts from it meets both.
    const mine = await add(runId, 150);
    await add(other, 1200);
    await add(runId, 150, 150).then((m) => mine.push(...m)); // and some after them too
    await engine.runs.addPending(runId, mine);
    await engine.runs.updateScan(runId, { status: 'done' });

    await engine.runs.requestAbort(runId, 'test');
    const removed = await runActions.drainRun(engine, runId);

    expect(removed).toBe(300);
    const left = await q.getJobs(['waiting', 'prioritized', 'delayed'], 0, -1);
    expect(left.filter((j) => j.data.runId === runId)).toEqual([]);
    expect(left.filter((j) => j.data.runId === other)).toHaveLength(1200);
    const run = (await engine.runs.get(runId))!;
    expect(run.targets.zephr!.skipped).toBe(300);
    expect(run.status).toBe('aborted');
  }, 120_000);

  it('retryFailed skips and reports a malformed dead letter; the others are re-driven and the run ends', async () => {
    h = await startHarness({ label: 'retry-malformed', sandbox: { users: 3 } });
    const engine = await h.engine();
    const q = engine.syncQueues.zephr!;
    const failedRun = 'failed-run';
    // Two dead letters: one good, one whose payload lost its user (a job from an older version, or
    // edited by hand).
    await q.add(syncJob.name, payload(failedRun, 'u-good'), { jobId: 'good-1', attempts: 1 });
    await q.add(
      syncJob.name,
      { runId: failedRun, target: 'zephr', userId: 'u-bad' },
      { jobId: 'bad-1', attempts: 1 },
    );
    // A bare worker that fails every job: both land in BullMQ's failed set, as dead letters do.
    const connection = redisClient();
    const failer = new Worker(
      q.name,
      async () => {
        throw new Error('gave up');
      },
      { connection, prefix: q.opts.prefix },
    );
    while ((await q.getFailedCount()) < 2) await new Promise((r) => setTimeout(r, 20));
    await failer.close();
    await connection.quit();
    expect((await q.getFailed()).map((j) => j.id).sort()).toEqual(['bad-1', 'good-1']);

    const r = await runActions.retryFailed(engine, { runId: failedRun });
    expect(r.jobs).toBe(1);
    expect(r.malformed).toEqual([{ target: 'zephr', jobId: 'bad-1', error: expect.stringMatching(/user/) }]);
    // The malformed one stays a dead letter; the good one moved to the retry run.
    expect((await q.getFailed()).map((j) => j.id)).toEqual(['bad-1']);
    await engine.startWorkers({ concurrency: 1 });
    const run = await runActions.waitForRun(engine, r.runId!, { pollMs: 50 });
    expect(run.status).toBe('completed');
    expect(run.scan.status).toBe('done');

    // Only malformed ones left: no run is created at all (none left `running`).
    const before = (await engine.runs.list(50)).length;
    const again = await runActions.retryFailed(engine, { runId: failedRun });
    expect(again).toEqual({ runId: null, jobs: 0, malformed: [expect.objectContaining({ jobId: 'bad-1' })] });
    expect((await engine.runs.list(50)).length).toBe(before);
    expect((await engine.runs.list(50)).filter((x) => x.status === 'running')).toEqual([]);
  }, 120_000);

  it('retryFailed --run of a run that does not exist (and has no dead letters) is an error', async () => {
    h = await startHarness({ label: 'retry-nosuch', sandbox: { users: 1 } });
    const engine = await h.engine();
    await expect(runActions.retryFailed(engine, { runId: 'nonexistent' })).rejects.toThrow(
      /no such run nonexistent/,
    );
  }, 60_000);
});

import * as runActions from '../../../jobs/run-actions.js';
