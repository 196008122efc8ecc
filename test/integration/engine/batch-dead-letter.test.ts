import type { Job } from 'bullmq';
import { afterEach, describe, expect, it } from 'vitest';
import * as runActions from '../../../jobs/run-actions.js';
import * as sync from '../../../jobs/sync.js';
import { type Harness, startHarness } from './harness.js';

// A sync batch's user that fails for good is settled `failed`, then handed to its own job that fails
// at once (jobs/sync-handover.ts). The run can end before a worker took that job, and when the
// process that ran the backfill exits first, it waits for the next worker. `retry-failed --run` right
// after the run must re-drive it all the same (the CI flake of stop 15 showed the window: 14 of 15
// dead letters in the failed set when the run ended).
describe('engine: a batch dead letter not yet failed is still re-driven by retry-failed', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it.each([
    ['--run', true],
    ['without --run (the recent runs)', false],
  ])(
    'the hand-over waits in the queue (no worker took it): retry-failed %s finds it, takes it out, writes the user',
    async (_, byRun) => {
      h = await startHarness({ label: 'batch-dead-letter', sandbox: { users: 10 } });
      // One permanent refusal (400): the batch's first write fails for good and is handed over dead.
      h.sandbox.sims.zephr.setFaults([{ kind: 'status', status: 400, times: 1, match: { method: 'PUT' } }]);
      const first = await h.engine({ only: ['zephr'] });
      await first.startWorkers({ concurrency: 1 });
      const run = await runActions.waitForRun(first, await runActions.startRun(first, { kind: 'backfill' }), {
        pollMs: 50,
      });
      expect(run.targets.zephr!.outcomes.failed).toBe(1);
      const failedUser = (await first.runs.items(run.id)).find((i) => i.outcome === 'failed')!.userId;
      const id = sync.jobId('zephr', run.id, failedUser);
      // Wait for the hand-over to land in the failed set, then stop every worker and put it back where
      // it is in the window: waiting for a worker.
      let job: Job | undefined;
      for (let i = 0; i < 200 && (await job?.getState()) !== 'failed'; i++) {
        job = await first.syncQueues.zephr!.getJob(id);
        if ((await job?.getState()) !== 'failed') await new Promise((r) => setTimeout(r, 25));
      }
      expect(job?.name).toBe('sync-handover');
      await first.close();
      const engine = await h.engine({ only: ['zephr'] });
      await (await engine.syncQueues.zephr!.getJob(id))!.retry('failed');
      expect(await engine.syncQueues.zephr!.getFailed(0, 10)).toHaveLength(0);
      expect(await (await engine.syncQueues.zephr!.getJob(id))!.getState()).toMatch(
        /^(waiting|prioritized)$/,
      );

      h.sandbox.sims.zephr.setFaults([]);
      const retried = await runActions.retryFailed(engine, byRun ? { runId: run.id } : {});
      expect(retried.jobs).toBe(1);
      // Taken out of the queue: no worker fails it into the dead letters later.
      expect(await engine.syncQueues.zephr!.getJob(id)).toBeUndefined();
      await engine.startWorkers({ concurrency: 1 });
      const redo = await runActions.waitForRun(engine, retried.runId!, { pollMs: 50 });
      expect(redo.targets.zephr!.outcomes.created).toBe(1);
      expect(await engine.syncQueues.zephr!.getFailed(0, 10)).toHaveLength(0);
    },
  );
});
