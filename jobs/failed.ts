import type { Job } from 'bullmq';
import { TARGET_IDS, type TargetId } from '../src/core/targets.js';
import type { JobContext } from '../src/queue/context.js';
import { checkFailureRate, maybeFinishRun } from '../src/queue/run-lifecycle.js';
import type { ScanInfo } from '../src/store/run-record.js';
import * as scanJob from './scan.js';
import * as syncBatch from './sync-batch.js';
import * as handover from './sync-handover.js';
import * as steps from './user-steps.js';

/** BullMQ's reason for a job that stalled more than `maxStalledCount` times (moveStalledJobsToWait.lua). */
export const STALLED_REASON = 'job stalled more than allowable limit';

/**
 * Settles a job that ended in BullMQ's failed set, from the worker's `failed` event.
 *
 * The handlers settle their own failures (jobs/sync.ts `handleFailure`, jobs/scan.ts) before they
 * throw. Some failures never pass through them: a job that stalled more than `maxStalledCount` times
 * (it kept killing its worker) is failed by BullMQ itself, by the next worker that picks it up,
 * without calling the processor (BullMQ 6 "deferred failure"); so is a job whose handler threw before
 * it could settle (an unclassified error from its own bookkeeping, attempts used up). Without this,
 * the run's `settled` never reaches `enqueued`, the run stays `running` for ever and every later
 * scheduled tick is recorded `skipped` (docs/daemon.md).
 *
 * Idempotent with the handlers: a sync job settles through the run's `settled` set (`RunStore.record`
 * adds its member once), so a failure the handler already recorded records nothing here; a scan whose
 * handler already ended it (`done`, `failed`, `aborted`) is left as it is. Only final failures count
 * (`job.finishedOn` is set only when the job moved to the failed set, not when it will be retried).
 * Returns what it did, for logs and tests.
 */
export async function settleFailedJob(
  job: Job | undefined,
  err: Error,
  ctx: JobContext,
): Promise<'settled' | 'scan-failed' | null> {
  if (!job?.finishedOn) return null; // retried later (or job unknown): not over yet
  const data = (job.data ?? {}) as { runId?: unknown; target?: unknown; userId?: unknown };
  if (typeof data.runId !== 'string') return null;
  const runId = data.runId;
  const stalled = err.message === STALLED_REASON;
  const lastError = { code: stalled ? 'E_STALLED' : 'E_JOB_FAILED', message: err.message };
  const log = ctx.logger.child({ job: job.id, runId });

  if (job.name === scanJob.name) {
    const ended = (s: ScanInfo) => ['done', 'failed', 'aborted'].includes(s.status);
    const scan = (await ctx.runs.get(runId))?.scan;
    if (!scan || ended(scan)) return null;
    // Issue 8.8: only if the scan has still not ended when written (the handler may end it meanwhile).
    const after = await ctx.runs.updateScan(
      runId,
      { status: 'failed', complete: false, error: err.message },
      (current) => !ended(current),
    );
    if (after.error !== err.message) return null;
    log.error({ err: lastError }, 'scan job failed outside its handler: the run is incomplete');
    await maybeFinishRun(ctx.runs, runId, ctx.alerts);
    return 'scan-failed';
  }

  if (job.name === syncBatch.name) return settleFailedBatch(job, lastError, ctx);

  // Sync and issue 5's remove jobs share the payload ids and the settle member.
  const target = data.target as TargetId;
  if (!TARGET_IDS.includes(target) || typeof data.userId !== 'string') return null;
  return settleFailedUser(job, runId, target, data.userId, lastError, stalled, ctx);
}

async function settleFailedUser(
  job: Job,
  runId: string,
  target: TargetId,
  userId: string,
  lastError: { code: string; message: string },
  stalled: boolean,
  ctx: JobContext,
): Promise<'settled' | null> {
  const log = ctx.logger.child({ job: job.id, runId });
  const gate = await ctx.runs.jobGate(runId, target);
  if (!gate.exists) return null;
  const recorded = await ctx.runs.record(runId, {
    settle: steps.settleMember(target, userId),
    counters: [[target, 'failed', 1]],
    items: [
      {
        userId,
        target,
        outcome: 'failed',
        attempts: job.attemptsMade,
        requests: [],
        lastError,
        jobId: String(job.id),
        at: Date.now(),
      },
    ],
    pii: gate.pii,
  });
  if (!recorded) return null; // the handler settled it already
  log.warn(
    { target, err: lastError, attempts: job.attemptsMade },
    stalled
      ? `${target} job stalled more than maxStalledCount times: settled as failed (dead letter)`
      : `${target} job failed outside its handler: settled as failed (dead letter)`,
  );
  await checkFailureRate(ctx.runs, runId, gate.maxFailureRate, ctx.alerts);
  await maybeFinishRun(ctx.runs, runId, ctx.alerts);
  return 'settled';
}

/**
 * A sync batch (jobs/sync-batch.ts) BullMQ failed (it stalled more than maxStalledCount times, or its
 * own bookkeeping kept failing): each of its users not settled yet is settled `failed` as a single job
 * would be, and handed to its own job that fails at once (jobs/sync-handover.ts), so it is a dead letter
 * `retry-failed` re-drives. Idempotent: a settled user records nothing and gets no dead letter.
 */
async function settleFailedBatch(
  job: Job,
  lastError: { code: string; message: string },
  ctx: JobContext,
): Promise<'settled' | null> {
  const parsed = syncBatch.payloadSchema.safeParse(job.data);
  if (!parsed.success) return null;
  const { runId, target } = parsed.data;
  const stalled = lastError.code === 'E_STALLED';
  let any = false;
  for (const user of Object.values(parsed.data.users)) {
    if ((await ctx.runs.jobGate(runId, target, steps.settleMember(target, user.id))).settled) continue;
    // The dead letter first: a crash in between leaves it to settle the user (its own failure).
    const data = syncBatch.userPayload(parsed.data, user);
    const dead = { tried: Math.max(1, job.attemptsMade), deadLetter: lastError.message };
    await handover.enqueue(ctx, job, data, dead, 0);
    if (await settleFailedUser(job, runId, target, user.id, lastError, stalled, ctx)) any = true;
  }
  return any ? 'settled' : null;
}
