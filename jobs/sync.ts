import { type Job, type JobsOptions, RateLimitError, UnrecoverableError } from 'bullmq';
import { z } from 'zod';
import { TARGET_IDS, type TargetId } from '../src/config/schema.js';
import { isSyncError, RejectedRecordError, type SyncError } from '../src/core/errors.js';
import type { Change, FieldDiff, FieldMap, Outcome, PlannedRequest, SourceUser } from '../src/core/types.js';
import { diffFields, isEmptyDiff } from '../src/core/diff.js';
import { userKey } from '../src/core/hashing.js';
import { maskBody, maskPath } from '../src/core/masking.js';
import {
  type AttemptRecord,
  RATE_LIMITED_STOP,
  type RunItem,
  type RunKind,
  stopKind,
} from '../src/store/run-record.js';
import type { CounterDelta } from '../src/store/run-store.js';
import { FULL_JITTER } from '../src/queue/backoff.js';
import { type EngineSettings, type JobContext, PRIORITY, type RequestScope } from '../src/queue/context.js';
import { checkFailureRate, formatWait, maybeFinishRun } from '../src/queue/run-lifecycle.js';

/**
 * One (user, target): compare, write what changed, record it. Runs in the target's queue
 * (`sync-<target>`), whose BullMQ limiter gates jobs and whose throttle gates every request.
 */
export const name = 'sync';

/** Ids, the run, and the four source fields the mapping needs: never a secret, never more user data. */
export const payloadSchema = z.object({
  runId: z.string().min(1),
  target: z.enum(TARGET_IDS),
  userId: z.string().min(1),
  user: z.object({
    id: z.string().min(1),
    firstName: z.string().nullish(),
    lastName: z.string().nullish(),
    email: z.string().nullish(),
  }),
  /** Read the target first and repair drift (`--full`). */
  full: z.boolean().default(false),
  /** Read (with `full`) and plan, write nothing. */
  dryRun: z.boolean().default(false),
});
export type SyncPayload = z.infer<typeof payloadSchema>;

export interface SyncResult {
  outcome: Outcome | 'skipped';
  requests: number;
}

/**
 * Deterministic job id: a duplicate enqueue within a run collapses. User ids may contain `:` (forbidden
 * in BullMQ ids), hence the hash.
 */
export function jobId(target: TargetId, runId: string, userId: string): string {
  return `sync-${target}-${runId}-${userKey(userId)}`;
}

/** The run's bookkeeping member for a (target, user): settles exactly once. */
export function settleMember(target: TargetId, userId: string): string {
  return `${target}/${userKey(userId)}`;
}

/** Job options: priority lane by run kind, the most attempts any class may use, our backoff. */
export function options(kind: RunKind, settings: EngineSettings): JobsOptions {
  return {
    priority: PRIORITY[kind],
    attempts: Math.max(settings.attempts.transient, settings.attempts.unknown),
    backoff: { type: FULL_JITTER },
    // Completed jobs are recorded in the run record; BullMQ's copy is only kept briefly.
    removeOnComplete: { age: 3600, count: 10_000 },
    // Failed jobs stay: they are the dead letters `retry-failed` re-drives (bounded like run records).
    removeOnFail: false,
  };
}

export function sourceUserOf(data: SyncPayload): SourceUser {
  const u: SourceUser = { id: data.user.id };
  if (data.user.firstName !== undefined) u.firstName = data.user.firstName;
  if (data.user.lastName !== undefined) u.lastName = data.user.lastName;
  if (data.user.email !== undefined) u.email = data.user.email;
  return u;
}

/** A planned request as stored for `--plan FILE`: masked unless the run stores PII. */
export function planLine(
  target: TargetId,
  userId: string,
  req: PlannedRequest,
  pii: boolean,
): Record<string, unknown> {
  const line: Record<string, unknown> = {
    target,
    userId,
    method: req.method,
    path: pii ? req.path : maskPath(req.path),
  };
  if (req.body !== undefined) line.body = pii ? req.body : maskBody(req.body);
  if (req.note) line.note = req.note;
  return line;
}

export async function handler(job: Job, ctx: JobContext): Promise<SyncResult> {
  const data = payloadSchema.parse(job.data);
  const { runId, target, userId } = data;
  const member = settleMember(target, userId);
  const log = ctx.logger.child({ job: job.id, runId, target });
  const attempt = job.attemptsMade + 1;

  const gate = await ctx.runs.jobGate(runId, target);
  if (!gate.exists) return { outcome: 'skipped', requests: 0 }; // run deleted by retention
  const settle = async (
    outcome: Outcome | 'skipped',
    item?: Omit<RunItem, 'target' | 'userId' | 'at' | 'attempts'>,
    counters: CounterDelta[] = [],
  ) => {
    const counter: CounterDelta = [target, outcome, 1];
    const full: RunItem[] = item
      ? [{ userId, target, attempts: attempt, at: Date.now(), jobId: job.id, ...item }]
      : [];
    await ctx.runs.record(runId, {
      settle: member,
      counters: [counter, ...counters],
      items: full,
      pii: gate.pii,
    });
    if (outcome === 'failed' || outcome === 'rejected')
      await checkFailureRate(ctx.runs, runId, gate.maxFailureRate);
    await maybeFinishRun(ctx.runs, runId);
  };

  const early = await passGate(gate, target, settle, () => ctx.runs.isSettled(runId, member));
  if (early) return early;

  const connector = ctx.targets[target];
  if (!connector) throw new UnrecoverableError(`target ${target} is not enabled in this worker`);
  const user = sourceUserOf(data);

  let next: FieldMap;
  try {
    next = connector.map(user);
  } catch (err) {
    if (err instanceof RejectedRecordError) {
      await settle('rejected', { outcome: 'rejected', reason: err.reason, requests: [] });
      return { outcome: 'rejected', requests: 0 };
    }
    throw err;
  }

  // A job can wait a whole window for the rate budget (or a 429 pause): if its run is aborted
  // meanwhile (Ctrl-C, --max-failure-rate, from any process), it gives up instead of sending; if the
  // target is stopped meanwhile (issue 8.3: a Retry-After beyond RATE_LIMIT_MAX_WAIT), it fails
  // without sending, like the jobs that meet the stop at the gate.
  const abort = new AbortController();
  const watch = setInterval(() => {
    ctx.runs.jobGate(runId, target).then(
      (g) => {
        if (g.abort) abort.abort(new RunAbortedError(g.abort));
        else if (g.stopped) abort.abort(new TargetStoppedError(g.stopped));
      },
      () => undefined,
    );
  }, 1000);
  const scope: RequestScope = { sent: 0, signal: abort.signal };
  try {
    const result = await ctx.requestScope
      .run(scope, () => attemptSync(ctx, data, user, next))
      .finally(() => clearInterval(watch));
    const tries = attempt > 1 ? await ctx.runs.tries(runId, String(job.id)) : [];
    const counters: CounterDelta[] = [
      [target, data.dryRun ? 'planned' : 'requests', data.dryRun ? result.planned.length : scope.sent],
    ];
    if (data.dryRun && scope.sent) counters.push([target, 'requests', scope.sent]);
    if (data.dryRun && result.planned.length && gate.plan) {
      await ctx.runs.addPlan(
        runId,
        result.planned.map((r) => planLine(target, userId, r, gate.pii)),
      );
    }
    const changed = result.outcome !== 'unchanged' || (result.drift && !isEmptyDiff(result.drift));
    const item: Omit<RunItem, 'target' | 'userId' | 'at' | 'attempts'> | undefined = changed
      ? {
          outcome: result.outcome,
          diff: result.diff,
          requests: result.requests,
          ...(result.drift && !isEmptyDiff(result.drift) ? { drift: result.drift } : {}),
          ...(tries.length ? { tries } : {}),
          ...(data.dryRun ? { dryRun: true } : {}),
        }
      : undefined;
    await settle(result.outcome, item, counters);
    if (tries.length) log.info({ userId, attempts: attempt }, 'sync succeeded after retries');
    return { outcome: result.outcome, requests: scope.sent };
  } catch (err) {
    if (abort.signal.aborted && abort.signal.reason instanceof TargetStoppedError) {
      const lastError = stoppedError(target, abort.signal.reason.message);
      await settle('failed', { outcome: 'failed', requests: [], lastError }, [
        [target, 'requests', scope.sent],
      ]);
      throw new UnrecoverableError(String(lastError.message));
    }
    if (abort.signal.aborted) {
      await settle('skipped', undefined, [[target, 'requests', scope.sent]]);
      return { outcome: 'skipped', requests: scope.sent };
    }
    return handleFailure(err, { job, ctx, data, scope, attempt, settle, log, next });
  }
}

/** The job's run was aborted while the job waited for the rate budget. */
export class RunAbortedError extends Error {
  override readonly name = 'RunAbortedError';
}

/** The job's target was stopped for the run while the job waited (message: the stop reason). */
export class TargetStoppedError extends Error {
  override readonly name = 'TargetStoppedError';
}

/** The lastError of a job that failed, without a request, because its target was stopped. */
export function stoppedError(target: TargetId, reason: string): Record<string, unknown> {
  const kind = stopKind(reason);
  return {
    code: kind === 'rate_limited' ? 'E_RATE_LIMITED' : 'E_TARGET_STOPPED',
    class: kind,
    message: `target ${target} stopped: ${reason}`,
  };
}

interface AttemptResult {
  outcome: 'created' | 'updated' | 'unchanged' | 'unlinked';
  diff: FieldDiff;
  drift?: FieldDiff;
  requests: RunItem['requests'];
  planned: PlannedRequest[];
}

async function attemptSync(
  ctx: JobContext,
  data: SyncPayload,
  user: SourceUser,
  next: FieldMap,
): Promise<AttemptResult> {
  const { target, userId } = data;
  const connector = ctx.targets[target]!;
  const linkedId = target === 'prelude' && ctx.links ? await ctx.links.get(userId) : undefined;
  const stored = await ctx.state.get(target, userId);
  let previous: FieldMap | null = stored?.fields ?? null;
  let drift: FieldDiff | undefined;
  if (data.full) {
    // Drift: what changed in the target since we wrote it, outside profile-sync. Only managed fields
    // come back from read(), so repairing them never touches fields profile-sync does not own.
    const current = await connector.read(user, linkedId);
    if (current !== undefined) {
      if (stored) drift = diffFields(stored.fields, current);
      previous = current;
    }
  }
  const change: Change = { userId, next, previous, user, ...(linkedId ? { linkedId } : {}) };
  if (data.dryRun) {
    const diff = diffFields(previous, next);
    const outcome = previous === null ? 'created' : isEmptyDiff(diff) ? 'unchanged' : 'updated';
    return { outcome, diff, requests: [], planned: connector.plan(change), ...(drift ? { drift } : {}) };
  }
  const result = await connector.write(change);
  if (result.outcome === 'unlinked') await ctx.state.markUnlinked(target, userId, next);
  else await ctx.state.saveWritten(target, userId, next);
  return {
    outcome: result.outcome,
    diff: result.diff,
    requests: result.requests,
    planned: [],
    ...(drift ? { drift } : {}),
  };
}

export interface FailureContext {
  job: Job;
  ctx: JobContext;
  data: SyncPayload;
  scope: RequestScope;
  attempt: number;
  next: FieldMap;
  log: JobContext['logger'];
  settle: (
    outcome: Outcome | 'skipped',
    item?: Omit<RunItem, 'target' | 'userId' | 'at' | 'attempts'>,
    counters?: CounterDelta[],
  ) => Promise<void>;
}

/**
 * Turns an error class into BullMQ behaviour (src/core/errors.ts has the table):
 * rate_limited -> pause the whole queue for Retry-After, RateLimitError (no attempt spent);
 * a RejectedRecordError -> outcome `rejected`; auth -> stop the target for this run; permanent -> failed now;
 * transient (and unknown) -> retry with full-jitter backoff until the class's attempts are used.
 */
export async function handleFailure(err: unknown, f: FailureContext): Promise<SyncResult> {
  const { job, ctx, data, scope, attempt, log, settle } = f;
  const { runId, target, userId } = data;
  const sent: CounterDelta = [target, 'requests', scope.sent];
  const errJson = errorJson(err);

  if (isSyncError(err) && err.errorClass === 'rate_limited') {
    // Issue 8.3: the wait is capped by RATE_LIMIT_MAX_WAIT. The HTTP layer has already paused the
    // target's throttle (every request of every process) for the capped wait (issue 8.5).
    const askedMs = err.retryAfterMs ?? ctx.settings.defaultRetryAfterMs;
    const maxMs = ctx.settings.rateLimitMaxWaitMs;
    const wait = Math.min(askedMs, maxMs);
    const queue = ctx.syncQueues[target];
    // The vendor allows less than *_RATE_LIMIT (or a smaller burst): lower the effective limit for
    // every process (AIMD, src/queue/throttle.ts), or the jobs can meet 429s for ever.
    const cut = await ctx.lowerRateLimit?.(target);
    const counters: CounterDelta[] = [
      [target, 'rateLimited', 1],
      ...(cut?.lowered ? [[target, 'limitCuts', 1] as CounterDelta] : []),
    ];
    const fields = {
      userId,
      status: err.status,
      retryAfterMs: askedMs,
      waitMs: wait,
      maxWaitMs: maxMs,
      ...(cut ? { effectiveLimit: cut.limit } : {}),
    };
    if (askedMs > maxMs) {
      // Beyond our own limit: the target is stopped for this run (like an auth stop), so the run ends
      // instead of hanging; its remaining jobs fail without a request into the dead letters, for
      // `retry-failed` once the vendor takes requests again. The target stays paused for the capped
      // wait only (other runs, the daemon).
      const reason = `${RATE_LIMITED_STOP}${target} asked to wait ${formatWait(askedMs)} (HTTP 429 Retry-After), more than RATE_LIMIT_MAX_WAIT (${formatWait(maxMs)})`;
      if (await ctx.runs.stopTarget(runId, target, reason)) {
        log.warn(
          fields,
          `${target} answered 429 asking to wait ${formatWait(askedMs)}, more than RATE_LIMIT_MAX_WAIT: target paused for ${formatWait(wait)} only and stopped for run ${runId}; its remaining jobs fail as rate_limited into the dead letters: run retry-failed later`,
        );
      }
      await settle('failed', { outcome: 'failed', requests: [], lastError: errJson }, [sent, ...counters]);
      throw new UnrecoverableError(`${err.code}: ${err.message}`);
    }
    await ctx.runs.incr(runId, [sent, ...counters]);
    log.warn(
      fields,
      cut?.lowered
        ? `${target} answered 429: queue paused for ${wait} ms, rate limit lowered to ${cut.limit} per window`
        : `${target} answered 429: queue paused for ${wait} ms`,
    );
    if (queue) await queue.rateLimit(wait);
    throw new RateLimitError();
  }
  // `unlinked` is not an error: the Prelude connector returns it as the write's outcome (404
  // user_not_found, seed 004), recorded with its request and marker by attemptSync.
  // A connector refusing what it was given (a Prelude user id `..` from the link table): `rejected`,
  // like a mapping refusal, never retried; nothing was sent.
  if (err instanceof RejectedRecordError) {
    await settle('rejected', { outcome: 'rejected', reason: err.reason, requests: [] }, [sent]);
    return { outcome: 'rejected', requests: scope.sent };
  }
  if (isSyncError(err) && err.errorClass === 'auth') {
    if (await ctx.runs.stopTarget(runId, target, `${err.code} ${err.status ?? ''} ${err.message}`.trim())) {
      log.error(
        { userId, status: err.status, vendorCode: err.vendorCode },
        `AUTH FAILED for ${target}: target stopped for run ${runId}, no further requests will be sent to it; fix the credentials and run retry-failed`,
      );
    }
    await settle('failed', { outcome: 'failed', requests: [], lastError: errJson }, [sent]);
    throw new UnrecoverableError(`${err.code}: ${err.message}`);
  }
  if (isSyncError(err) && err.errorClass === 'permanent') {
    await settle('failed', { outcome: 'failed', requests: [], lastError: errJson }, [sent]);
    throw new UnrecoverableError(`${err.code}: ${err.message}`);
  }
  // transient, or an error nobody classified
  const allowed = isSyncError(err) ? ctx.settings.attempts.transient : ctx.settings.attempts.unknown;
  const tryRecord: AttemptRecord = { attempt, at: Date.now(), error: errJson, requestsSent: scope.sent };
  if (attempt >= allowed) {
    const tries = await ctx.runs.tries(runId, String(job.id));
    await settle(
      'failed',
      { outcome: 'failed', requests: [], lastError: errJson, ...(tries.length ? { tries } : {}) },
      [sent],
    );
    log.warn({ userId, attempts: attempt, err: errJson }, 'sync failed for good');
    throw new UnrecoverableError(`${String(errJson.code ?? 'E_UNKNOWN')}: ${String(errJson.message)}`);
  }
  await ctx.runs.addTry(runId, String(job.id), tryRecord);
  await ctx.runs.incr(runId, [sent, [target, 'retries', 1]]);
  log.info({ userId, attempt, err: errJson }, 'sync attempt failed, retrying with backoff');
  throw err;
}

function errorJson(err: unknown): Record<string, unknown> {
  if (isSyncError(err)) return (err as SyncError).toJSON();
  if (err instanceof Error)
    return { code: (err as { code?: unknown }).code ?? 'E_UNKNOWN', message: err.message };
  return { code: 'E_UNKNOWN', message: String(err) };
}

type JobGate = Awaited<ReturnType<JobContext['runs']['jobGate']>>;
type Settle = (
  outcome: 'failed' | 'skipped',
  item?: { outcome: 'failed'; requests: []; lastError: Record<string, unknown> },
) => Promise<void>;

/**
 * The checks every per-user job (sync, remove) makes before touching a target. Returns the result to
 * end the job with, or undefined to go on:
 * - the run was aborted: settle `skipped`;
 * - the target refused our credentials earlier in this run: fail without a request (never hammer it);
 *   the job lands in the failed set, so `retry-failed` re-drives it once the credentials are fixed;
 * - the job already settled: a replay, `skipped`.
 */
export async function passGate(
  gate: JobGate,
  target: TargetId,
  settle: Settle,
  isSettled: () => Promise<boolean>,
): Promise<SyncResult | undefined> {
  if (gate.abort) {
    await settle('skipped');
    return { outcome: 'skipped', requests: 0 };
  }
  if (gate.stopped) {
    const lastError = stoppedError(target, gate.stopped);
    await settle('failed', { outcome: 'failed', requests: [], lastError });
    throw new UnrecoverableError(String(lastError.message));
  }
  if (await isSettled()) return { outcome: 'skipped', requests: 0 };
  return undefined;
}
