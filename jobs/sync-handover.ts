import { type Job, UnrecoverableError } from 'bullmq';
import { z } from 'zod';
import type { JobContext } from '../src/queue/context.js';
import * as sync from './sync.js';
import type { SyncResult } from './user-steps.js';

/**
 * A user a sync batch (jobs/sync-batch.ts) handed over after its try failed: the single job the user
 * would have had from the start (same id, `sync.jobId`), carrying on from where the batch left it.
 * - `tried`: the tries the batch made (1); this job's try n is the user's try `tried + n`, its backoff
 *   and its attempts per error class count them (src/queue/backoff.ts), so a user gets the attempts
 *   configured, no more.
 * - `deadLetter`: the batch's try ended the user (settled `failed`, the reason given): this job fails
 *   at once without a request, so the user lands in the dead letters as a single job would, and
 *   `retry-failed` re-drives it as a `sync` job (its schema drops these two fields).
 */
export const name = 'sync-handover';

export const payloadSchema = sync.payloadSchema.extend({
  tried: z.number().int().min(1),
  deadLetter: z.string().optional(),
});
export type HandoverPayload = z.infer<typeof payloadSchema>;

export async function handler(job: Job, ctx: JobContext): Promise<SyncResult> {
  const { tried, deadLetter, ...data } = payloadSchema.parse(job.data);
  if (deadLetter !== undefined) throw new UnrecoverableError(deadLetter);
  return sync.syncUser(ctx, data, { job, attempt: job.attemptsMade + 1 + tried });
}

/** Adds the user's own job (a no-op when it exists already: the id is deterministic). */
export async function enqueue(
  ctx: JobContext,
  batch: Job,
  data: sync.SyncPayload,
  extra: { tried: number; deadLetter?: string },
  delay: number,
): Promise<void> {
  const base = sync.options('backfill', ctx.settings);
  await ctx.syncQueues[data.target]!.add(
    name,
    { ...data, ...extra },
    {
      ...base,
      // The batch's lane (the run's kind), and only the attempts the user has left.
      priority: batch.opts.priority ?? base.priority,
      attempts: Math.max(1, (base.attempts ?? 1) - extra.tried),
      ...(delay > 0 ? { delay } : {}),
      jobId: sync.jobId(data.target, data.runId, data.userId),
    },
  );
}
