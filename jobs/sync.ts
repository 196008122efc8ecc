import { type Job, type JobsOptions, UnrecoverableError } from 'bullmq';
import { z } from 'zod';
import { diffFields, isEmptyDiff } from '../src/core/diff.js';
import { RejectedRecordError } from '../src/core/errors.js';
import { userKey } from '../src/core/hashing.js';
import { maskBody, maskPath } from '../src/core/masking.js';
import { TARGET_IDS, type TargetId } from '../src/core/targets.js';
import type { Change, FieldDiff, FieldMap, PlannedRequest, SourceUser } from '../src/core/types.js';
import { FULL_JITTER } from '../src/queue/backoff.js';
import { type EngineSettings, type JobContext, PRIORITY, type RequestScope } from '../src/queue/context.js';
import { linkIdOf } from '../src/store/links.js';
import type { RunItem, RunKind } from '../src/store/run-record.js';
import type { CounterDelta } from '../src/store/run-store.js';
import type { SettleEntry } from '../src/store/settle-codec.js';
import type { StateWrite, TargetState } from '../src/store/state-store.js';
import { needsLink, resolveLink } from './link-steps.js';
import {
  handleFailure,
  itemOf,
  type JobGate,
  makeSettle,
  passGate,
  RunAbortedError,
  type SyncResult,
  settleMember,
  stoppedError,
  TargetStoppedError,
} from './user-steps.js';

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
  /** Prelude: the scan's batch_lookup for this user failed; the job looks it up (jobs/link-steps.ts). */
  lookup: z.boolean().optional(),
  /** Prelude, dry run: the id the scan's lookup found (a dry run stores no link). */
  link: z.string().min(1).optional(),
});
export type SyncPayload = z.infer<typeof payloadSchema>;

/**
 * Deterministic job id: a duplicate enqueue within a run collapses. User ids may contain `:` (forbidden
 * in BullMQ ids), hence the hash.
 */
export function jobId(target: TargetId, runId: string, userId: string): string {
  return `sync-${target}-${runId}-${userKey(userId)}`;
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
  return syncUser(ctx, data, { job, attempt: job.attemptsMade + 1 });
}

/** Which job runs a user's sync, and its try (jobs/sync-batch.ts runs several users in one job). */
export interface UserRun {
  job: Job;
  /** 1-based try of this user (a handed-over user counts the batch's try: jobs/sync-handover.ts). */
  attempt: number;
  /** Where the user's failed tries are kept (`RunStore.addTry`), asked only when needed. @defaultValue the job's id */
  triesId?: () => string;
  /** `settleMember(target, userId)`, when the caller has it already. */
  member?: string;
  /** What the gate read for this user, when the caller read it already (a batch's one gate call). */
  gate?: JobGate;
  /**
   * Takes the settle of a written user (its outcome is never `failed` or `rejected`) to record later
   * with others in one call (`RunStore.recordMany`); absent: the user settles at once.
   */
  settleLater?: (entry: SettleEntry, pii: boolean) => void;
  /** With `settleLater`: records what it holds (before a failure or rejection is judged). */
  settleHeld?: () => Promise<void>;
  /**
   * The controller the user's abort watch aborts, when the caller keeps one (not aborted) for its users
   * in turn: a new AbortController per user was ~1% of a worker's CPU (issue 11). A watch's read still
   * in flight when its user ended may abort it for the next user: only for a run aborted or a target
   * stopped, which that user's own watch or gate would find too. @defaultValue a new one
   */
  abort?: AbortController;
}

/**
 * One user's sync for one target, the steps every sync job makes: gate, map, write, record and settle;
 * a failure goes through `handleFailure` (retry, dead letter, 429 pause), exactly as a single job.
 */
export async function syncUser(ctx: JobContext, data: SyncPayload, run: UserRun): Promise<SyncResult> {
  const { runId, target, userId } = data;
  const { job, attempt } = run;
  const member = run.member ?? settleMember(target, userId);
  // Built only when something is logged: a pino child per user is measurable (issue 11.4).
  const log = () => ctx.logger.child({ job: job.id, runId, target });

  // Issue 11.2: the gate, the replay check, the target state and the Prelude link in one round trip.
  const reads = gateReads(ctx, target, userId);
  const gate = run.gate ?? (await ctx.runs.jobGate(runId, target, member, reads));
  if (!gate.exists) return { outcome: 'skipped', requests: 0 }; // run deleted by retention
  const known: Known = {
    stored: await ctx.state.parse(target, userId, gate.reads[0] ?? null),
    ...(reads.length > 1 ? { link: linkIdOf(gate.reads[1]) } : {}),
  };

  const held = run.settleHeld;
  const settle = makeSettle(ctx, {
    job,
    runId,
    target,
    userId,
    member,
    attempt,
    gate,
    ...(held ? { held } : {}),
  });
  const triesId = () => run.triesId?.() ?? String(job.id);

  const early = await passGate(gate, target, settle);
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
  const abort = run.abort ?? new AbortController();
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
    const result = await attemptSync(ctx, data, user, next, attempt, known, scope).finally(() =>
      clearInterval(watch),
    );
    const tries = attempt > 1 ? await ctx.runs.tries(runId, triesId()) : [];
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
    // Issue 11: a batch settles its users' plain outcomes a few in one call (jobs/sync-batch.ts).
    if (run.settleLater && !data.dryRun)
      run.settleLater(
        {
          settle: member,
          counters: [[target, result.outcome, 1], ...counters],
          items: item ? [itemOf({ job, target, userId, attempt }, item)] : [],
          ...(result.state ? { state: result.state } : {}),
        },
        gate.pii,
      );
    else await settle(result.outcome, item, counters, result.state);
    if (tries.length) log().info({ userId, attempts: attempt }, 'sync succeeded after retries');
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
    return handleFailure(err, {
      job,
      ctx,
      data,
      scope,
      attempt,
      settle,
      log: log(),
      next,
      triesId: triesId(),
    });
  }
}

/** The [hash, field] reads the gate makes for a user: the target state, and the Prelude link. */
export function gateReads(ctx: JobContext, target: TargetId, userId: string): (readonly [string, string])[] {
  const reads: (readonly [string, string])[] = [ctx.state.readOf(target, userId)];
  if (target === 'prelude' && ctx.links) reads.push([ctx.runs.backing().layout.links(), userId]);
  return reads;
}

interface AttemptResult {
  outcome: 'created' | 'updated' | 'unchanged' | 'unlinked';
  diff: FieldDiff;
  drift?: FieldDiff;
  requests: RunItem['requests'];
  planned: PlannedRequest[];
  /** The target state to record with the settle (issue 11.2: written in the same call). */
  state?: StateWrite;
}

/** What the gate read for the job (issue 11.2): its target state, and its Prelude link when it has one. */
interface Known {
  stored: TargetState | null;
  /** Absent: not read (not Prelude, or no link store); undefined inside: no link. */
  link?: string | undefined;
}

async function attemptSync(
  ctx: JobContext,
  data: SyncPayload,
  user: SourceUser,
  next: FieldMap,
  attempt: number,
  known: Known,
  scope: RequestScope,
): Promise<AttemptResult> {
  const { target, userId } = data;
  const connector = ctx.targets[target]!;
  // The gate read the link (one call); a dry run's scan may hand one over in the payload.
  let linkedId = target === 'prelude' && ctx.links ? (known.link ?? data.link) : undefined;
  const linker = target === 'prelude' && needsLink(ctx) ? connector.linker : undefined;
  let linkRequests: RunItem['requests'] = [];
  if (linkedId === undefined && linker && (data.lookup || (!data.dryRun && linker.createUsers))) {
    const how = { attempt, lookup: data.lookup === true, dryRun: data.dryRun, runId: data.runId, scope };
    const made = await resolveLink(ctx, linker, user, next, how);
    if (made.created) {
      await ctx.state.saveWritten(target, userId, next);
      return { outcome: 'created', diff: diffFields(null, next), requests: made.requests, planned: [] };
    }
    linkedId = made.linkedId;
    linkRequests = made.requests;
  }
  const stored = known.stored;
  let previous: FieldMap | null = stored?.fields ?? null;
  let drift: FieldDiff | undefined;
  if (data.full) {
    // Drift: what changed in the target since we wrote it, outside profile-sync. Only managed fields
    // come back from read(), so repairing them never touches fields profile-sync does not own.
    const current = await connector.read(user, linkedId, scope);
    if (current !== undefined) {
      if (stored) drift = diffFields(stored.fields, current);
      previous = current;
    }
  }
  // A user without a link here was looked up already (by the scan or above): plan the create only.
  const lookedUp = linkedId === undefined && linker?.looksUp === true;
  const change: Change = {
    userId,
    next,
    previous,
    user,
    ...(linkedId ? { linkedId } : { lookedUp }),
    scope,
  };
  if (data.dryRun) {
    const diff = diffFields(previous, next);
    const planned = connector.plan(change);
    if (lookedUp && planned.length) await ctx.runs.record(data.runId, { counters: [[target, 'creates', 1]] });
    const outcome =
      lookedUp && planned.length === 0
        ? 'unlinked'
        : previous === null
          ? 'created'
          : isEmptyDiff(diff)
            ? 'unchanged'
            : 'updated';
    return { outcome, diff, requests: linkRequests, planned, ...(drift ? { drift } : {}) };
  }
  const result = await connector.write(change);
  result.requests = [...linkRequests, ...result.requests];
  // Issue 10: user_not_found at a linked id (deleted in Prelude): the link goes, the next lookup decides.
  if (result.outcome === 'unlinked' && linkedId && needsLink(ctx)) await ctx.links?.drop(userId, linkedId);
  if (result.outcome === 'unlinked') await ctx.state.markUnlinked(target, userId, next);
  return {
    ...(result.outcome === 'unlinked' ? {} : { state: await ctx.state.writeOf(target, userId, next) }),
    outcome: result.outcome,
    diff: result.diff,
    requests: result.requests,
    planned: [],
    ...(drift ? { drift } : {}),
  };
}
