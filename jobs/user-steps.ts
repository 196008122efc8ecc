import { type Job, RateLimitError, UnrecoverableError } from 'bullmq';
import { isSyncError, RejectedRecordError, type SyncError } from '../src/core/errors.js';
import { userKey } from '../src/core/hashing.js';
import type { TargetId } from '../src/core/targets.js';
import type { FieldMap, Outcome } from '../src/core/types.js';
import type { JobContext, RequestScope } from '../src/queue/context.js';
import { checkFailureRate, formatWait, maybeFinishRun } from '../src/queue/run-lifecycle.js';
import { type AttemptRecord, RATE_LIMITED_STOP, type RunItem, stopKind } from '../src/store/run-record.js';
import type { CounterDelta } from '../src/store/run-store.js';
import type { StateWrite } from '../src/store/state-store.js';
import type { SyncPayload } from './sync.js';

/**
 * The steps every per-user job (sync, remove) makes, written once: the gate before any request
 * (`passGate`), the settle member, `makeSettle` (record outcome and item, settle exactly once, check
 * the failure rate, end the run if this was its last job) and the failure handling (`handleFailure`).
 */

export interface SyncResult {
  outcome: Outcome | 'skipped';
  requests: number;
}

/** The run's bookkeeping member for a (target, user): settles exactly once. */
export function settleMember(target: TargetId, userId: string): string {
  return `${target}/${userKey(userId)}`;
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

export interface FailureContext {
  job: Job;
  ctx: JobContext;
  data: SyncPayload;
  scope: RequestScope;
  attempt: number;
  next: FieldMap;
  log: JobContext['logger'];
  /** Where the job's failed tries are kept. @defaultValue the job's id */
  triesId?: string;
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
  const triesId = f.triesId ?? String(job.id);
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
    const reason = `${err.code} ${err.status ?? ''} ${err.message}`.trim();
    if (await ctx.runs.stopTarget(runId, target, reason)) {
      ctx.alerts?.authFailed(runId, target, reason);
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
    const tries = await ctx.runs.tries(runId, triesId);
    await settle(
      'failed',
      { outcome: 'failed', requests: [], lastError: errJson, ...(tries.length ? { tries } : {}) },
      [sent],
    );
    log.warn({ userId, attempts: attempt, err: errJson }, 'sync failed for good');
    throw new UnrecoverableError(`${String(errJson.code ?? 'E_UNKNOWN')}: ${String(errJson.message)}`);
  }
  await ctx.runs.addTry(runId, triesId, tryRecord);
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

export type JobGate = Awaited<ReturnType<JobContext['runs']['jobGate']>>;
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
  if (gate.settled) return { outcome: 'skipped', requests: 0 };
  return undefined;
}

/** Who a per-user job (sync, remove) settles for. */
export interface SettleScope {
  job: Job;
  runId: string;
  target: TargetId;
  userId: string;
  /** `settleMember(target, userId)`. */
  member: string;
  /** 1-based attempt of this job. */
  attempt: number;
  gate: JobGate;
  /** Settles a batch holds back (jobs/sync-batch.ts): recorded before a failure is judged against them. */
  held?: () => Promise<void>;
}

/** A per-user job's run item: its outcome's details, with who, when, which try and which job. */
export function itemOf(
  s: Pick<SettleScope, 'job' | 'target' | 'userId' | 'attempt'>,
  item: Omit<RunItem, 'target' | 'userId' | 'at' | 'attempts'>,
): RunItem {
  return {
    userId: s.userId,
    target: s.target,
    attempts: s.attempt,
    at: Date.now(),
    jobId: String(s.job.id),
    ...item,
  };
}

/**
 * The one way a per-user job ends: record its outcome counter and item and settle its member in one
 * script call (exactly once), check the run's failure rate after a failure or rejection, and end the run
 * if this was its last job.
 */
export function makeSettle(ctx: JobContext, s: SettleScope) {
  return async (
    outcome: Outcome | 'skipped',
    item?: Omit<RunItem, 'target' | 'userId' | 'at' | 'attempts'>,
    counters: CounterDelta[] = [],
    /** The job's target state, written in the settle's call (issue 11.2: one round trip less). */
    state?: StateWrite,
  ): Promise<void> => {
    const items: RunItem[] = item ? [itemOf(s, item)] : [];
    // A remove job never ends `rejected`: checking both is what each job did before. The failure rate
    // is judged before the finish check; otherwise the finish check rides on the settle (one call).
    const judge = outcome === 'failed' || outcome === 'rejected';
    // The failure rate counts every user written before this one, as when each settled at once.
    if (judge) await s.held?.();
    await ctx.runs.record(s.runId, {
      settle: s.member,
      counters: [[s.target, outcome, 1], ...counters],
      items,
      pii: s.gate.pii,
      // A state write rides only with the finish check (never with a failure or rejection in practice).
      finish: !judge || state !== undefined,
      ...(state ? { state } : {}),
      // Issue 12.3: the run ended in this call's finish check (not in maybeFinishRun): alert as it would.
      onEnded: (status) => ctx.alerts?.runEnded(s.runId, status),
    });
    if (judge) {
      await checkFailureRate(ctx.runs, s.runId, s.gate.maxFailureRate, ctx.alerts);
      await maybeFinishRun(ctx.runs, s.runId, ctx.alerts);
    }
  };
}
