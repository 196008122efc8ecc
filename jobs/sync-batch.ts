import { type Job, type JobsOptions, RateLimitError, UnrecoverableError } from 'bullmq';
import { z } from 'zod';
import { userKey } from '../src/core/hashing.js';
import { TARGET_IDS, type TargetId } from '../src/core/targets.js';
import { retryDelay } from '../src/queue/backoff.js';
import type { EngineSettings, JobContext } from '../src/queue/context.js';
import type { RunKind, RunStatus } from '../src/store/run-record.js';
import type { SettleEntry } from '../src/store/settle-codec.js';
import * as sync from './sync.js';
import * as handover from './sync-handover.js';
import { type JobGate, type SyncResult, settleMember } from './user-steps.js';

/**
 * Issue 11.4: several changed users of one scan chunk for one target in one job, run one after the
 * other through the single job's steps (`sync.syncUser`). BullMQ's own work per job (adding it,
 * fetching it, finishing it: about 110-160 µs of Redis time plus its client's work) is then paid once
 * per batch instead of once per user; SYNC_CONCURRENCY batch jobs still mean that many requests in
 * flight per target. Per user nothing changes: the gate decides (a settled user is skipped, so a batch
 * re-run after a crash or a stall re-sends nothing settled), the settle is the user's own.
 *
 * A user's failure is the single job's (`handleFailure`), then:
 * - a 429 within RATE_LIMIT_MAX_WAIT paused the target: the batch ends with RateLimitError (no attempt
 *   spent) and runs again after the pause, its settled users skipped;
 * - a failure the single job would retry: the user is handed over to its own `sync-handover` job (the
 *   single job's id), which counts the try made here and goes on with the same backoff and attempts;
 * - a failure the single job would dead-letter (the user settled `failed`): a `sync-handover` job that
 *   fails at once without a request puts the user in the dead letters, for `retry-failed`.
 * Then the batch goes on with its next user.
 */
export const name = 'sync-batch';

export const payloadSchema = z.object({
  runId: z.string().min(1),
  target: z.enum(TARGET_IDS),
  /** Read the target first and repair drift (`--full`). */
  full: z.boolean().default(false),
  /**
   * The users, each as a single job's `user` (ids and the four source fields the mapping needs), by the
   * id the user's single job has (`sync.jobId`: its tries and a hand-over use it). Keyed by it, so that
   * `forget` (src/pipeline/erasure-sweep.ts), which drops a JSON entry whose key names the user, takes
   * the whole user out of a batch, names included, as it deletes a single job whose id names the user.
   */
  users: z.record(z.string(), sync.payloadSchema.shape.user),
});
export type SyncBatchPayload = z.infer<typeof payloadSchema>;

/**
 * The batch's payload, as `payloadSchema.parse` gives it. Issue 11: zod's parse of 16 users was about
 * 1% of a worker's CPU; a payload of exactly the shape the scan writes is checked and copied by hand
 * (the same checks, unknown keys dropped, `full` defaulted), anything else goes through the schema
 * (its errors, its rules).
 */
export function parsePayload(data: unknown): SyncBatchPayload {
  return plainPayload(data) ?? payloadSchema.parse(data);
}

const TARGETS: ReadonlySet<unknown> = new Set(TARGET_IDS);
const NAMES = ['firstName', 'lastName', 'email'] as const;
const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function plainPayload(data: unknown): SyncBatchPayload | undefined {
  if (!isObject(data) || !isObject(data.users)) return undefined;
  const { runId, target, full } = data;
  if (typeof runId !== 'string' || runId === '' || !TARGETS.has(target)) return undefined;
  if (full !== undefined && typeof full !== 'boolean') return undefined;
  const users: SyncBatchPayload['users'] = {};
  for (const [key, u] of Object.entries(data.users)) {
    if (!isObject(u) || typeof u.id !== 'string' || u.id === '') return undefined;
    const user: SyncBatchPayload['users'][string] = { id: u.id };
    for (const k of NAMES) {
      if (!(k in u)) continue;
      const v = u[k];
      if (v !== null && typeof v !== 'string') return undefined;
      user[k] = v;
    }
    users[key] = user;
  }
  return { runId, target: target as TargetId, full: full ?? false, users };
}

/**
 * Deterministic: the batch of the users at positions [first, first + SYNC_BATCH_SIZE) of the scan
 * chunk that starts at source position `start`. A scan that re-adds a chunk's jobs after a crash
 * makes the same ids, so a duplicate collapses as a single job's does.
 */
export function jobId(target: TargetId, runId: string, start: number, first: number): string {
  return `sync-batch-${target}-${runId}-${start}-${first}`;
}

/** A single job's options: same priority lane, attempts and backoff (a batch retried re-runs only its unsettled users). */
export function options(kind: RunKind, settings: EngineSettings): JobsOptions {
  // Failed batches are not dead letters: their users are (jobs/failed.ts hands them over).
  return { ...sync.options(kind, settings), removeOnFail: { age: 3600 } };
}

/** The users a target job holds: a batch's, or a single job's one (`drainRun` settles each). */
export function userIdsOf(job: Job): string[] {
  const data = job.data as { userId?: unknown; users?: Record<string, { id?: unknown }> } | undefined;
  if (job.name === name && data?.users && typeof data.users === 'object')
    return Object.values(data.users)
      .map((u) => u?.id)
      .filter((id): id is string => typeof id === 'string');
  return typeof data?.userId === 'string' ? [data.userId] : [];
}

/** The single job's payload of the batch's `i`-th user. */
export function userPayload(
  data: SyncBatchPayload,
  user: SyncBatchPayload['users'][string],
): sync.SyncPayload {
  return { runId: data.runId, target: data.target, userId: user.id, user, full: data.full, dryRun: false };
}

/**
 * How long the batch's one gate call (abort, target stop, and every user's replay check, state and
 * link) stands for its users before it is read again: an abort or a target stop from another process
 * reaches a batch's next user within this (a single job's next gate, before; a user waiting for its
 * grant still gives up within a second, as in a single job).
 */
const GATE_FRESH_MS = 1000;

/**
 * Issue 11: how many written users of a batch settle in one call (`RunStore.recordMany`), and the
 * longest the first of them waits for it (the next user's request may take long). One settle call per
 * written user cost the worker more CPU than the write itself: 4 a call cut the engine's CPU per write
 * by about a sixth (docs/performance.md). A worker that dies in between leaves them unsettled: the
 * batch runs again (stalled) and writes them again (the same PUT/PATCH), none is lost and none settles
 * twice; at most SETTLE_GROUP writes of a batch, written within SETTLE_WAIT_MS, are sent twice. 200 ms:
 * long enough that two busy replicas still settle full groups (at 50 ms, half their calls were the
 * timer's, with 2.8 users each instead of 3.9). 8, not 4 (issue 11, later): each Redis command cost the
 * worker 70-120 µs of CPU on the bench's VM whatever its size (the socket write), so a batch of 16 now
 * settles in 2 calls instead of 4 (one process, rate limits off; busier replicas: the timer's, ~7 each).
 */
const SETTLE_GROUP = 8;
const SETTLE_WAIT_MS = 200;

export async function handler(job: Job, ctx: JobContext): Promise<{ users: number; requests: number }> {
  const data = parsePayload(job.data);
  const attempt = job.attemptsMade + 1;
  // Run before (a stall, a 429 pause, a retry): a user handed over then has its own job now.
  const rerun = job.attemptsStarted > 1 || job.stalledCounter > 0;
  const queue = ctx.syncQueues[data.target]!;
  const singles = Object.keys(data.users);
  const users = Object.values(data.users).map((u) => userPayload(data, u));
  const members = users.map((u) => settleMember(u.target, u.userId));
  // Issue 11.4: one gate call for the batch's users (re-read when older than GATE_FRESH_MS). After
  // anything but a plain outcome (an abort, a stop, a failure) each user reads its own, as a single job.
  let gates: { from: number; at: number; list: JobGate[] } | undefined;
  // One abort controller for the users in turn, replaced once aborted (jobs/sync.ts `UserRun.abort`).
  let abort = new AbortController();
  let shared = true;
  let requests = 0;
  // Issue 11: written users settle SETTLE_GROUP at a time in one call, or SETTLE_WAIT_MS after the
  // first of them wrote (the next user's request may take long), the rest when the batch ends however
  // it ends (a 429 pause ends it too). One call at a time, in order; a failed call fails the batch.
  const later: { entry: SettleEntry; pii: boolean }[] = [];
  let timer: NodeJS.Timeout | undefined;
  let settling: Promise<void> = Promise.resolve();
  const flush = (): Promise<void> => {
    clearTimeout(timer);
    timer = undefined;
    const all = later.splice(0);
    if (all.length) settling = settling.then(() => settleAll(ctx, data.runId, all));
    return settling;
  };
  const settleLater = (entry: SettleEntry, pii: boolean) => {
    later.push({ entry, pii });
    timer ??= setTimeout(() => void flush().catch(() => undefined), SETTLE_WAIT_MS);
  };
  try {
    for (const [i, one] of users.entries()) {
      if (later.length >= SETTLE_GROUP) await flush();
      requests += await runUser(i, one);
    }
  } finally {
    await flush();
  }
  return { users: users.length, requests };

  /** The batch's i-th user, as its single job would run it; the requests it sent. */
  async function runUser(i: number, one: sync.SyncPayload): Promise<number> {
    const single = singles[i]!;
    if (rerun && (await queue.getJob(single))) return 0;
    if (shared && (!gates || performance.now() - gates.at > GATE_FRESH_MS)) {
      const rest = users.slice(i).map((u, k) => ({
        member: members[i + k]!,
        reads: sync.gateReads(ctx, u.target, u.userId),
      }));
      gates = {
        from: i,
        at: performance.now(),
        list: await ctx.runs.jobGates(data.runId, data.target, rest),
      };
    }
    const gate = shared ? gates?.list[i - gates.from] : undefined;
    if (gate && (gate.abort || gate.stopped || !gate.exists)) shared = false;
    let result: SyncResult;
    if (abort.signal.aborted) abort = new AbortController();
    try {
      const run = {
        job,
        attempt,
        triesId: () => single,
        member: members[i]!,
        settleLater,
        settleHeld: flush,
        abort,
      };
      result = await sync.syncUser(ctx, one, gate ? { ...run, gate } : run);
    } catch (err) {
      if (err instanceof RateLimitError) throw err; // the target is paused: the batch waits with it
      shared = false;
      await handOver(ctx, job, one, attempt, err);
      return 0;
    }
    if (result.outcome === 'failed' || result.outcome === 'rejected') shared = false;
    return result.requests;
  }
}

/** Settles written users of the batch in one call (one per PII setting: one run has one). */
async function settleAll(ctx: JobContext, runId: string, all: { entry: SettleEntry; pii: boolean }[]) {
  const onEnded = (status: RunStatus) => ctx.alerts?.runEnded(runId, status);
  for (const pii of [false, true]) {
    const entries = all.filter((l) => l.pii === pii).map((l) => l.entry);
    if (entries.length) await ctx.runs.recordMany(runId, entries, { pii, onEnded });
  }
}

/**
 * The user failed in the batch: an UnrecoverableError means the single job would be a dead letter now
 * (the user settled `failed` already); anything else, that it would be retried after a backoff.
 */
async function handOver(ctx: JobContext, job: Job, data: sync.SyncPayload, attempt: number, err: unknown) {
  const dead = err instanceof UnrecoverableError;
  const message = err instanceof Error ? err.message : String(err);
  const delay = dead ? 0 : retryDelay(attempt, ctx.settings.backoff, err);
  await handover.enqueue(
    ctx,
    job,
    data,
    dead ? { tried: attempt, deadLetter: message } : { tried: attempt },
    delay,
  );
  ctx.logger.debug(
    { job: job.id, runId: data.runId, target: data.target, userKey: userKey(data.userId), dead },
    'user of a sync batch handed over to its own job',
  );
}
