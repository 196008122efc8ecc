import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { GET_USERS_BATCH } from '../src/connectors/source/connector.js';
import type { SourceConnector } from '../src/connectors/types.js';
import { isSyncError, SyncError } from '../src/core/errors.js';
import type { TargetId } from '../src/core/targets.js';
import type { SourceRecord } from '../src/core/types.js';
import {
  alertHeld,
  brakeReason,
  policyOf,
  removalPlanLine,
  removalRequests,
} from '../src/pipeline/deletions.js';
import type { JobContext } from '../src/queue/context.js';
import { maybeFinishRun } from '../src/queue/run-lifecycle.js';
import {
  type DeletionSettings,
  type DeletionSummary,
  dropUnlinkedOfGone,
  findGone,
  goneBatches,
  goneKey,
  lastWritten,
  orphansKey,
  readDeletions,
  recordSeen,
  SEEN_TTL_MS,
  seenKey,
  writeDeletions,
} from '../src/store/deletions.js';
import type { RedisLayout } from '../src/store/redis-layout.js';
import type { RunItem, RunKind, RunRecord } from '../src/store/run-record.js';
import type { CounterDelta } from '../src/store/run-store.js';
import * as remove from './remove.js';
import * as steps from './user-steps.js';

/** Items a held run records per target (the counters count every user; the gone set lists them all). */
export const HELD_ITEMS_MAX = 1000;

/**
 * Issue 5, after a COMPLETE scan (every page read, not limited, not aborted): every target's known
 * users the scan did not return are gone. Per target policy `ignore` records them `orphaned`
 * (untouched); `delete`/`clear` enqueues a removal job per user in the target's queue. The safety
 * brake first: if any acting target would lose more than `MAX_DELETE_RATE` of its known users or
 * more than `MAX_DELETES`, nobody is removed, the gone users are recorded `orphaned` (held), the run
 * ends `held` and an alert is raised; `backfill --confirm-deletes RUN` re-drives exactly those.
 * A dry run records who would be removed (`removed`, dry run) and the requests, sends nothing.
 */
export async function reconcileDeletions(
  ctx: JobContext,
  run: RunRecord,
  targets: TargetId[],
  syncFound: (records: SourceRecord[]) => Promise<number>,
): Promise<DeletionSummary> {
  const { redis, layout } = ctx.runs.backing();
  const log = ctx.logger.child({ runId: run.id });
  const settings = run.options.deletions;
  const summary: DeletionSummary = { targets: {} };
  const knownOf: Partial<Record<TargetId, number>> = {};
  for (const t of targets) {
    const { known } = await findGone(redis, layout, run.id, t, run.startedAt, ctx.runs.retention.maxAgeMs);
    knownOf[t] = known;
  }
  // Issue 8.1: a candidate is only a user the scan did not return. Offset paging can skip a live user
  // when the list moves, so every candidate is asked for again (GET /user?idIn=, batched) before it is
  // orphaned or removed; a user found again is not gone and is synced in this run.
  const { rechecked, found } = await recheckGone(ctx, run.id, targets, syncFound);
  if (rechecked) {
    await ctx.runs.updateScan(run.id, { rechecked, foundAgain: found });
    const level = found ? 'warn' : 'info';
    log[level]({ rechecked, foundAgain: found }, 'deletion candidates re-checked against the source');
  }
  for (const t of targets) {
    const gone = await redis.scard(goneKey(layout, run.id, t));
    summary.targets[t] = { policy: policyOf(settings, t), known: knownOf[t] ?? 0, gone };
  }
  const held = brakeReason(summary.targets, settings ?? { maxDeleteRate: 0.05, maxDeletes: 1000 });
  if (!held && !run.options.dryRun && targets.includes('prelude')) {
    const markers = await dropUnlinkedOfGone(redis, layout, run.id, 'prelude');
    summary.unlinkedMarkers = markers;
    if (markers.dropped)
      log.info({ target: 'prelude', dropped: markers.dropped }, 'unlinked markers of users who left dropped');
  }
  // UNLINK: a million ids are freed in the background, not while Redis answers nobody else.
  await redis.unlink(seenKey(layout, run.id), layout.runSeenCounts(run.id));
  if (held) summary.held = held;
  // Written before any removal job exists: whoever settles last must already see the hold.
  await writeDeletions(redis, layout, run.id, summary, { hold: Boolean(held) && !run.options.dryRun });

  for (const t of targets) {
    const d = summary.targets[t]!;
    // `ignore` targets: who is orphaned now replaces who was (items only for the newly orphaned).
    const trackOrphans = d.policy === 'ignore' && !run.options.dryRun;
    const nextOrphans = layout.runOrphans(run.id, t);
    if (d.gone === 0) {
      if (trackOrphans) await redis.del(orphansKey(layout, t));
      continue;
    }
    // A scan job retried after this point (its worker died) must not record a target twice.
    const doneField = `deletionsDone:${t}`;
    if ((await redis.hsetnx(layout.run(run.id), doneField, '1')) === 0) continue;
    const acts = d.policy !== 'ignore';
    let heldItems = 0;
    for await (const ids of goneBatches(redis, layout, run.id, t)) {
      const payloads = await lastWritten(ctx.state, t, ids);
      if (run.options.dryRun) {
        const outcome = acts ? 'removed' : 'orphaned';
        const items = ids.map((userId, i) =>
          goneItem(userId, t, outcome, payloads[i] ?? null, { dryRun: true }),
        );
        const counters: CounterDelta[] = [[t, outcome, ids.length]];
        if (acts) {
          counters.push([t, 'planned', ids.length * removalRequests(t)]);
          if (run.options.plan)
            await ctx.runs.addPlan(
              run.id,
              ids.map((id, i) => removalPlanLine(t, id, d.policy, payloads[i] ?? null, run.options.showPii)),
            );
        }
        await ctx.runs.record(run.id, { counters, items, pii: run.options.showPii });
      } else if (!acts || held) {
        // A held run records at most HELD_ITEMS_MAX items per target: a source outage that returns no
        // users would otherwise write every known user into each scheduled run's record until fixed.
        // The full list is the run's gone set, which --confirm-deletes uses.
        // An `ignore` target records an item only when a user is first found orphaned (every run
        // counts them all): 96 scheduled runs a day must not re-record the same orphans each time.
        const room = acts ? Math.max(0, HELD_ITEMS_MAX - heldItems) : ids.length;
        let fresh = ids.map((_, i) => i).slice(0, room);
        if (trackOrphans) {
          const before = (await redis.smismember(orphansKey(layout, t), ...ids)) as number[];
          fresh = fresh.filter((i) => before[i] === 0);
          await redis
            .multi()
            .sadd(nextOrphans, ...ids)
            .pexpire(nextOrphans, SEEN_TTL_MS)
            .exec();
        }
        const items = fresh.map((i) =>
          goneItem(ids[i]!, t, 'orphaned', payloads[i] ?? null, acts ? { held: true } : {}),
        );
        if (acts) heldItems += items.length;
        await ctx.runs.record(run.id, {
          counters: [[t, 'orphaned', ids.length]],
          items,
          pii: run.options.showPii,
        });
      } else {
        await enqueueRemovals(ctx, run.id, run.kind, t, ids);
      }
    }
    if (trackOrphans) {
      if (await redis.exists(nextOrphans)) await redis.rename(nextOrphans, orphansKey(layout, t));
      await redis.persist(orphansKey(layout, t));
    }
    log.info({ target: t, ...d, held: Boolean(held) }, 'users who left the source detected');
  }
  if (held && !run.options.dryRun) {
    // The log line always; the webhook when configured (not `alerts?.x(alertHeld(...))`: optional
    // chaining would skip the log line with the call).
    const alert = alertHeld(ctx.logger, { runId: run.id, reason: held, targets: summary.targets });
    ctx.alerts?.deletionsHeld(alert);
  }
  return summary;
}

function goneItem(
  userId: string,
  target: TargetId,
  outcome: 'removed' | 'orphaned',
  payload: RunItem['payload'] | null,
  extra: { dryRun?: boolean; held?: boolean },
): RunItem {
  return {
    userId,
    target,
    outcome,
    reason:
      outcome === 'removed'
        ? 'left the source: would be removed'
        : extra.held
          ? 'left the source: removal held by the safety brake'
          : 'left the source: policy ignore, left untouched (recorded once; every run counts it)',
    attempts: 0,
    requests: [],
    ...(payload ? { payload } : {}),
    ...extra,
    at: Date.now(),
  };
}

async function enqueueRemovals(
  ctx: JobContext,
  runId: string,
  kind: RunKind,
  target: TargetId,
  ids: string[],
): Promise<void> {
  const specs = ids.map((userId) => ({
    name: remove.name,
    data: { runId, target, userId },
    opts: { ...remove.options(kind, ctx.settings), jobId: remove.jobId(target, runId, userId) },
  }));
  // Pending before the jobs exist: a job that finishes at once must find its member pending.
  await ctx.runs.addPending(
    runId,
    ids.map((id) => steps.settleMember(target, id)),
  );
  await ctx.syncQueues[target]!.addBulk(specs);
}

/** Result of `confirmHeldDeletions`. */
export interface ConfirmResult {
  runId: string;
  /** Removal jobs enqueued. */
  removals: number;
  /** Held users the source returns again (re-checked in batches): not removed. */
  returned: number;
  /** Targets whose policy is now `ignore` (config changed since): their held users stay. */
  ignored: TargetId[];
}

/**
 * `backfill --confirm-deletes RUN`: re-drives exactly the removals the brake held in that run, after
 * re-checking the held users against the source (`GET /user?idIn=`, batched, with a canary; a user
 * found again is dropped from the held set and not removed). Uses the policy in force now: a target switched to
 * `ignore` since removes nobody. The run goes back to `running` and ends `completed` once the removal
 * jobs settled; its items then show the held users `orphaned` and, later, `removed`.
 */
export async function confirmHeldDeletions(
  ctx: JobContext,
  runId: string,
  settings: DeletionSettings,
): Promise<ConfirmResult> {
  const { redis, layout } = ctx.runs.backing();
  const run = await ctx.runs.get(runId);
  if (!run) throw new ConfirmError(`no run ${runId} (see: profile-sync runs)`);
  const summary = await readDeletions(redis, layout, runId);
  if (run.status !== 'held' || !summary?.held)
    throw new ConfirmError(
      `run ${runId} has no held deletions (status ${run.status}${summary?.confirmed ? ', already confirmed' : ''})`,
    );
  const source = ctx.source();
  let returned = 0;
  const ignored: TargetId[] = [];
  const acting: TargetId[] = [];
  for (const [t, d] of Object.entries(summary.targets) as [
    TargetId,
    NonNullable<(typeof summary.targets)[TargetId]>,
  ][]) {
    if (d.gone === 0 || d.policy === 'ignore') continue;
    if (policyOf(settings, t) === 'ignore' || !ctx.targets[t]) {
      ignored.push(t);
      continue;
    }
    acting.push(t);
  }
  // Re-check first, changing nothing in the run: a source outage here leaves the run held as it was.
  // Batched (GET /user?idIn=) with a canary: a known user who was not held must be answered too, or
  // the source (or a proxy answering 404/empty to everything) is not trusted to confirm anything.
  const absentKey = layout.runConfirmAbsent(runId);
  const presentKey = layout.runConfirmPresent(runId);
  await redis.del(absentKey, presentKey);
  try {
    for (const t of acting) {
      const canaries = () => knownNotGone(redis, layout, runId, t);
      for await (const ids of goneBatches(redis, layout, runId, t)) {
        const flags = await decided(redis, [presentKey, absentKey], ids);
        const back = ids.filter((_, i) => flags[0]![i]);
        const ask = ids.filter((_, i) => !flags[0]![i] && !flags[1]![i]);
        const { present, absent } = await recheckBatch(source, ask, canaries);
        if (present.size) await redis.sadd(presentKey, ...present.keys());
        if (absent.length) await redis.sadd(absentKey, ...absent);
        back.push(...present.keys());
        if (back.length) await redis.srem(goneKey(layout, runId, t), ...back);
      }
    }
    returned = await redis.scard(presentKey);
  } finally {
    await redis.del(absentKey, presentKey);
  }

  // The scan status goes back to `running` while jobs are enqueued, so nobody finishes the run early.
  await redis
    .multi()
    .hset(layout.run(runId), 'status', 'running')
    .hdel(layout.run(runId), 'endedAt')
    .persist(layout.runPending(runId))
    .persist(layout.runSettled(runId))
    .exec();
  await ctx.runs.updateScan(runId, { status: 'running' });
  let removals = 0;
  try {
    for (const t of acting) {
      for await (const ids of goneBatches(redis, layout, runId, t)) {
        await enqueueRemovals(ctx, runId, run.kind, t, ids);
        removals += ids.length;
      }
    }
    summary.confirmed = { at: Date.now(), removals, returned };
    await writeDeletions(redis, layout, runId, summary, { hold: false });
  } finally {
    await ctx.runs.updateScan(runId, { status: 'done' });
    await maybeFinishRun(ctx.runs, runId, ctx.alerts);
  }
  ctx.logger.warn({ runId, removals, returned, ignored }, 'held deletions confirmed by the operator');
  return { runId, removals, returned, ignored };
}

/** Re-check attempts per batch: a 429 or a 5xx from the source waits and tries again. */
const RECHECK_ATTEMPTS = 10;

/** Canary ids that answer for the source's sanity in a re-check. */
const CANARIES = 3;

/**
 * Asks the source for `ids` plus one canary, a user known to be there (read by this very scan, or
 * known and not held). A source that does not return the canary, nor any of a few others asked alone,
 * is not answering sanely (an outage returning empty lists, a proxy answering 404 to everything): the
 * re-check throws, and nobody is concluded gone from it. A 429 or a 5xx waits (`Retry-After`, or a
 * linear backoff) and tries again.
 */
export async function recheckBatch(
  source: SourceConnector,
  ids: string[],
  canaries: () => Promise<string[]>,
): Promise<{ present: Map<string, SourceRecord>; absent: string[] }> {
  const present = new Map<string, SourceRecord>();
  if (ids.length === 0) return { present, absent: [] };
  const pool = (await canaries()).filter((c) => !ids.includes(c));
  for (let i = 0; i < ids.length; i += GET_USERS_BATCH - 1) {
    const batch = ids.slice(i, i + GET_USERS_BATCH - 1);
    const canary = pool[0];
    const answer = await withRetries(() =>
      source.getUsers(canary === undefined ? batch : [...batch, canary]),
    );
    if (canary !== undefined && !answer.has(canary)) {
      // The canary may have left just now: a few others, alone, must be there.
      const others = pool.slice(1, 1 + CANARIES);
      const again = others.length ? await withRetries(() => source.getUsers(others)) : new Map();
      if (again.size === 0)
        throw new SyncError(
          'transient',
          'source: the deletion re-check got no answer for users known to be in the source: it does not answer sanely, nobody is concluded gone',
          { target: 'source', vendorCode: 'recheck_insane' },
        );
    }
    for (const id of batch) {
      const rec = answer.get(id);
      if (rec) present.set(id, rec);
    }
  }
  return { present, absent: ids.filter((id) => !present.has(id)) };
}

async function withRetries<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!isSyncError(err) || !err.retryable || attempt >= RECHECK_ATTEMPTS) throw err;
      await sleep((err.retryAfterMs ?? 500 * attempt) + Math.random() * 250);
    }
  }
}

/** Per key, whether each id is a member. */
async function decided(redis: Redis, keys: string[], ids: string[]): Promise<boolean[][]> {
  if (ids.length === 0) return keys.map(() => []);
  const out: boolean[][] = [];
  for (const k of keys) out.push(((await redis.smismember(k, ...ids)) as number[]).map((m) => m === 1));
  return out;
}

/** A few of a target's known users that are not in the run's gone set (confirm's canaries). */
async function knownNotGone(
  redis: Redis,
  layout: RedisLayout,
  runId: string,
  t: TargetId,
): Promise<string[]> {
  const sample = ((await redis.hrandfield(layout.state(t), 20)) as string[] | null) ?? [];
  if (sample.length === 0) return [];
  const member = (await redis.smismember(goneKey(layout, runId, t), ...sample)) as number[];
  return sample.filter((_, i) => member[i] === 0).slice(0, CANARIES + 1);
}

/**
 * Re-checks every deletion candidate of a complete scan (the union of the targets' gone sets) against
 * the source, in batches. Found again: synced through `syncFound` (as the scan would have), added to
 * the seen set and dropped from every gone set. Confirmed absent: remembered for the other targets.
 * Memory: one batch at a time (decisions live in Redis sets of the run).
 */
async function recheckGone(
  ctx: JobContext,
  runId: string,
  targets: TargetId[],
  syncFound: (records: SourceRecord[]) => Promise<number>,
): Promise<{ rechecked: number; found: number }> {
  const { redis, layout } = ctx.runs.backing();
  const seen = seenKey(layout, runId);
  const absentKey = layout.runAbsent(runId);
  const canaries = async () => ((await redis.srandmember(seen, CANARIES + 1)) as string[] | null) ?? [];
  let rechecked = 0;
  let found = 0;
  await redis.del(absentKey);
  try {
    for (const t of targets) {
      for await (const ids of goneBatches(redis, layout, runId, t)) {
        const [inSeen, inAbsent] = await decided(redis, [seen, absentKey], ids);
        const back = ids.filter((_, i) => inSeen![i]);
        const ask = ids.filter((_, i) => !inSeen![i] && !inAbsent![i]);
        if (ask.length) {
          const { present, absent } = await recheckBatch(ctx.source(), ask, canaries);
          rechecked += ask.length;
          if (present.size) {
            found += present.size;
            await syncFound([...present.values()]);
            await recordSeen(redis, layout, runId, [...present.keys()]);
            back.push(...present.keys());
          }
          if (absent.length)
            await redis
              .multi()
              .sadd(absentKey, ...absent)
              .pexpire(absentKey, SEEN_TTL_MS)
              .exec();
        }
        if (back.length) await redis.srem(goneKey(layout, runId, t), ...back);
      }
    }
  } finally {
    await redis.del(absentKey);
  }
  return { rechecked, found };
}

/** `--confirm-deletes` refused (unknown run, nothing held): exit 1 with the message. */
export class ConfirmError extends Error {
  readonly code = 'E_CONFIRM_DELETES';
}
