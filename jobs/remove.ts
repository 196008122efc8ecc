import type { Job, JobsOptions } from 'bullmq';
import { UnrecoverableError } from 'bullmq';
import { z } from 'zod';
import { userKey } from '../src/core/hashing.js';
import { TARGET_IDS, type TargetId } from '../src/core/targets.js';
import type { EngineSettings, JobContext, RequestScope } from '../src/queue/context.js';
import type { RunKind } from '../src/store/run-record.js';
import * as sync from './sync.js';
import * as steps from './user-steps.js';

/**
 * One (user, target) removal for a user who left the source (issue 5): `connector.remove()` (Sunshine
 * DELETE or privacy-strip PUT, Zephr clear, Prelude PATCH to ""), then the user's state and unlinked
 * marker are dropped so a user who comes back is created afresh. Runs in the target's `sync-<target>`
 * queue, so the target's rate limit, the 429 pause, retries with backoff and the dead letter apply
 * exactly as to writes. The Prelude link table entry is kept: links are operator data, imported from
 * a file, and a returning user still maps to the same Prelude user (only `forget` drops a link).
 */
export const name = 'remove';

/** Ids only: the payload to record is read from the state store when the job runs. */
export const payloadSchema = z.object({
  runId: z.string().min(1),
  target: z.enum(TARGET_IDS),
  userId: z.string().min(1),
});
export type RemovePayload = z.infer<typeof payloadSchema>;

export function jobId(target: TargetId, runId: string, userId: string): string {
  return `remove-${target}-${runId}-${userKey(userId)}`;
}

/** Same lanes, attempts and backoff as a sync job of the same run kind. */
export function options(kind: RunKind, settings: EngineSettings): JobsOptions {
  return sync.options(kind, settings);
}

export async function handler(job: Job, ctx: JobContext): Promise<steps.SyncResult> {
  const data = payloadSchema.parse(job.data);
  const { runId, target, userId } = data;
  // The same bookkeeping member as a sync job: a user who left has no sync job in this run.
  const member = steps.settleMember(target, userId);
  const log = ctx.logger.child({ job: job.id, runId, target });
  const attempt = job.attemptsMade + 1;

  const gate = await ctx.runs.jobGate(runId, target, member);
  if (!gate.exists) return { outcome: 'skipped', requests: 0 };

  const settle = steps.makeSettle(ctx, { job, runId, target, userId, member, attempt, gate });

  const early = await steps.passGate(gate, target, settle);
  if (early) return early;

  const connector = ctx.targets[target];
  if (!connector) throw new UnrecoverableError(`target ${target} is not enabled in this worker`);
  const stored = await ctx.state.get(target, userId);
  const previous = stored?.fields ?? null;
  // Written after this run started: the user came back and a later run created them again (a held
  // run may be confirmed days later). Removing now would delete a live user's fresh profile.
  const startedAt = (await ctx.runs.get(runId))?.startedAt ?? 0;
  if (stored && stored.writtenAt >= startedAt) {
    await settle('unchanged', {
      outcome: 'unchanged',
      reason: 'back in the source and written again since this run started: not removed',
      requests: [],
    });
    return { outcome: 'unchanged', requests: 0 };
  }
  // Issue 8.3: a removal waiting for the target (a 429 pause) gives up without sending once the
  // target is stopped for the run (a Retry-After beyond RATE_LIMIT_MAX_WAIT, or an auth stop).
  const stop = new AbortController();
  const watch = setInterval(() => {
    ctx.runs.jobGate(runId, target).then(
      (g) => {
        if (g.stopped) stop.abort(new steps.TargetStoppedError(g.stopped));
      },
      () => undefined,
    );
  }, 1000);
  const scope: RequestScope = { sent: 0, signal: stop.signal };
  try {
    const linkedId = target === 'prelude' && ctx.links ? await ctx.links.get(userId) : undefined;
    const result = await connector.remove({ id: userId }, previous, linkedId, scope);
    await ctx.state.remove(target, userId);
    const tries = attempt > 1 ? await ctx.runs.tries(runId, String(job.id)) : [];
    await settle(
      'removed',
      {
        outcome: 'removed',
        reason: `left the source: ${result.action === 'absent' ? 'absent in the target already' : result.action}`,
        requests: result.requests,
        ...(previous ? { payload: previous } : {}),
        ...(tries.length ? { tries } : {}),
      },
      [[target, 'requests', scope.sent]],
    );
    log.info({ userKey: userKey(userId), action: result.action }, 'user who left the source removed');
    return { outcome: 'removed', requests: scope.sent };
  } catch (err) {
    if (stop.signal.aborted && stop.signal.reason instanceof steps.TargetStoppedError) {
      const lastError = steps.stoppedError(target, stop.signal.reason.message);
      await settle('failed', { outcome: 'failed', requests: [], lastError }, [
        [target, 'requests', scope.sent],
      ]);
      throw new UnrecoverableError(String(lastError.message));
    }
    return steps.handleFailure(err, {
      job,
      ctx,
      data: { ...data, user: { id: userId }, full: false, dryRun: false },
      scope,
      attempt,
      settle,
      log,
      next: {},
    });
  } finally {
    clearInterval(watch);
  }
}
