import type { Job, Queue } from 'bullmq';
import { afterEach, describe, expect, it } from 'vitest';
import * as runActions from '../../../jobs/run-actions.js';
import * as sync from '../../../jobs/sync.js';
import { closeConnectors, createTargetConnectors } from '../../../src/connectors/registry.js';
import type { TargetConnector } from '../../../src/connectors/types.js';
import type { Change } from '../../../src/core/types.js';
import { createLogger } from '../../../src/log.js';
import { type Harness, startHarness } from './harness.js';

// Issue 11.4: a backfill's changed users go to their target in batches of SYNC_BATCH_SIZE per job
// (jobs/sync-batch.ts): BullMQ's work per job is paid once per batch. Per user nothing changes.
describe('engine: sync batches (issue 11.4)', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  /**
   * The queue's completed jobs once `n` are (a run completes at its last settle, inside that job's
   * handler; BullMQ marks the job completed after the handler returns).
   */
  async function completed(queue: Queue, done: (jobs: Job[]) => boolean): Promise<Job[]> {
    for (let i = 0; i < 500; i++) {
      const jobs = (await queue.getCompleted(0, 100)) as Job[];
      if (done(jobs)) return jobs;
      await new Promise((r) => setTimeout(r, 20));
    }
    return (await queue.getCompleted(0, 100)) as Job[];
  }
  const writes = (hh: Harness) => hh.sandbox.sims.zephr.requests(0).filter((r) => r.method === 'PUT');

  it('40 changed users of a chunk: 3 batch jobs (16, 16, 8), every user written once and settled', async () => {
    h = await startHarness({ label: 'batch', sandbox: { users: 40 } });
    const engine = await h.engine({ only: ['zephr'] });
    await engine.startWorkers({ concurrency: 2 });
    const run = await runActions.waitForRun(engine, await runActions.startRun(engine, { kind: 'backfill' }), {
      pollMs: 50,
    });
    expect(run.status).toBe('completed');
    expect(run.settled).toBe(40);
    expect(run.targets.zephr!.outcomes.created).toBe(40);
    const jobs = await completed(engine.syncQueues.zephr!, (j) => j.length >= 3);
    expect(jobs.map((j) => j.name)).toEqual(['sync-batch', 'sync-batch', 'sync-batch']);
    expect(jobs.map((j) => Object.keys(j.data.users).length).sort()).toEqual([16, 16, 8]);
    expect(writes(h).map((r) => r.status)).toEqual(Array(40).fill(200));
  });

  it('a 503 on one write: that user goes on in its own job (sync-handover) with the try counted, the batch goes on', async () => {
    h = await startHarness({
      label: 'batch-handover',
      sandbox: { users: 40 },
      env: { SYNC_ATTEMPTS: '3', SYNC_BACKOFF_BASE_MS: '20', SYNC_BACKOFF_MAX_MS: '40' },
    });
    // Three 503s: the first write's try with its two HTTP-level retries (src/connectors/http.ts).
    h.sandbox.sims.zephr.setFaults([{ kind: 'status', status: 503, times: 3, match: { method: 'PUT' } }]);
    const engine = await h.engine({ only: ['zephr'] });
    await engine.startWorkers({ concurrency: 1 }); // one request at a time: the three 503s are one try's
    const run = await runActions.waitForRun(engine, await runActions.startRun(engine, { kind: 'backfill' }), {
      pollMs: 50,
    });
    expect(run.status).toBe('completed');
    const z = run.targets.zephr!;
    expect(z.outcomes.created).toBe(40);
    expect(z.outcomes.failed ?? 0).toBe(0);
    expect(z.retries).toBe(1);
    const retried = (await engine.runs.items(run.id)).filter((i) => i.attempts > 1);
    expect(retried).toHaveLength(1);
    expect(retried[0]!.attempts).toBe(2);
    expect(retried[0]!.tries?.map((t) => t.error.code)).toEqual(['E_TRANSIENT']);
    // Its own job, with the single job's id, counting the batch's try; 43 PUTs: 3 for the failed try.
    const jobs = await completed(engine.syncQueues.zephr!, (js) =>
      js.some((j) => j.name === 'sync-handover'),
    );
    const own = jobs.filter((j) => j.name === 'sync-handover');
    expect(own).toHaveLength(1);
    expect(own[0]!.id).toBe(sync.jobId('zephr', run.id, retried[0]!.userId));
    expect(own[0]!.data.tried).toBe(1);
    expect(
      writes(h)
        .map((r) => r.status)
        .sort(),
    ).toEqual([...Array(40).fill(200), 503, 503, 503]);
  });

  it('issue 11: written users settle a few in one call; a group whose call failed is written again by the retried batch, each user settled once', async () => {
    h = await startHarness({
      label: 'batch-settle-group',
      sandbox: { users: 10 },
      env: { SYNC_BACKOFF_BASE_MS: '20', SYNC_BACKOFF_MAX_MS: '40' },
    });
    const real = createTargetConnectors(
      h.config,
      { logger: createLogger({ level: 'silent' }) },
      { only: ['zephr'] },
    ).zephr!;
    const written = new Map<string, number>();
    const zephr: TargetConnector = Object.assign(Object.create(real) as TargetConnector, {
      write: (change: Change) => {
        written.set(change.userId, (written.get(change.userId) ?? 0) + 1);
        return real.write(change);
      },
    });
    try {
      const engine = await h.engine({ only: ['zephr'], targets: { zephr } });
      // The batch's first settle call is lost (Redis gone for a moment): none of its users is recorded.
      const recordMany = engine.runs.recordMany.bind(engine.runs);
      const calls: string[][] = [];
      engine.runs.recordMany = async (runId, entries, opts) => {
        calls.push(entries.map((e) => e.settle));
        if (calls.length === 1) throw new Error('settle call lost');
        return recordMany(runId, entries, opts);
      };
      await engine.startWorkers({ concurrency: 1 });
      const run = await runActions.waitForRun(
        engine,
        await runActions.startRun(engine, { kind: 'backfill' }),
        {
          pollMs: 50,
        },
      );
      expect(run.status).toBe('completed');
      expect(run.settled).toBe(10);
      const lost = calls[0]!;
      expect(lost.length).toBeGreaterThan(1); // several users in one call
      expect(calls.length).toBeLessThan(10 + lost.length); // fewer calls than settles
      // The lost group's users were written again by the batch's retry, every other user once; each
      // user counted once: the run's counters and items are exact.
      expect(written.size).toBe(10);
      expect([...written.values()].filter((n) => n === 2)).toHaveLength(lost.length);
      expect([...written.values()].every((n) => n <= 2)).toBe(true);
      expect(run.targets.zephr!.outcomes.created).toBe(10);
      expect(await engine.runs.itemCount(run.id)).toBe(10);
    } finally {
      await closeConnectors({ zephr: real });
    }
  });
});
