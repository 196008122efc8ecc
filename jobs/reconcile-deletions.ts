import { setTimeout as sleep } from 'node:timers/promises';
import pLimit from 'p-limit';
import type { TargetId } from '../src/config/schema.js';
import { isSyncError } from '../src/connectors/errors.js';
import type { SourceConnector } from '../src/connectors/types.js';
import {
  alertHeld,
  brakeReason,
  type DeletionSettings,
  type DeletionSummary,
  dropUnlinkedOfGone,
  findGone,
  goneBatches,
  goneKey,
  lastWritten,
  orphansKey,
  policyOf,
  readDeletions,
  removalPlanLine,
  removalRequests,
  SEEN_TTL_MS,
  seenKey,
  writeDeletions,
} from '../src/pipeline/deletions.js';
import type { RunItem, RunKind, RunRecord } from '../src/pipeline/run-record.js';
import type { CounterDelta } from '../src/pipeline/run-store.js';
import type { JobContext } from '../src/queue/context.js';
import { maybeFinishRun } from '../src/queue/run-lifecycle.js';
import * as remove from './remove.js';
import * as sync from './sync.js';

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
): Promise<DeletionSummary> {
  const { redis, layout } = ctx.runs.backing();
  const log = ctx.logger.child({ runId: run.id });
  const settings = run.options.deletions;
  const summary: DeletionSummary = { targets: {} };
  for (const t of targets) {
    const { known, gone } = await findGone(
      redis,
      layout,
      run.id,
      t,
      run.startedAt,
      ctx.runs.retention.maxAgeMs,
    );
    summary.targets[t] = { policy: policyOf(settings, t), known, gone };
  }
  const held = brakeReason(summary.targets, settings ?? { maxDeleteRate: 0.05, maxDeletes: 1000 });
  if (!held && !run.options.dryRun && targets.includes('prelude')) {
    const dropped = await dropUnlinkedOfGone(redis, layout, run.id, 'prelude');
    if (dropped) log.info({ target: 'prelude', dropped }, 'unlinked markers of users who left dropped');
  }
  await redis.del(seenKey(layout, run.id));
  if (held) summary.held = held;
  // Written before any removal job exists: whoever settles last must already see the hold.
  await writeDeletions(redis, layout, run.id, summary, { hold: Boolean(held) && !run.options.dryRun });

  for (const t of targets) {
    const d = summary.targets[t]!;
    // `ignore` targets: who is orphaned now replaces who was (items only for the newly orphaned).
    const trackOrphans = d.policy === 'ignore' && !run.options.dryRun;
    const nextOrphans = layout.key('run', run.id, 'orphans', t);
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
  if (held && !run.options.dryRun)
    alertHeld(ctx.logger, { runId: run.id, reason: held, targets: summary.targets });
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
    ids.map((id) => sync.settleMember(target, id)),
  );
  await ctx.syncQueues[target]!.addBulk(specs);
}

/** Result of `confirmHeldDeletions`. */
export interface ConfirmResult {
  runId: string;
  /** Removal jobs enqueued. */
  removals: number;
  /** Held users the source returns again (re-checked one by one): not removed. */
  returned: number;
  /** Targets whose policy is now `ignore` (config changed since): their held users stay. */
  ignored: TargetId[];
}

/**
 * `backfill --confirm-deletes RUN`: re-drives exactly the removals the brake held in that run, after
 * re-checking each held user against the source (`GET /user/{id}/profile`; a user found again is
 * dropped from the held set and not removed). Uses the policy in force now: a target switched to
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
  const limit = pLimit(8);
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
  const absent = new Map<string, boolean>();
  for (const t of acting) {
    for await (const ids of goneBatches(redis, layout, runId, t)) {
      const back: string[] = [];
      await Promise.all(
        ids.map((id) =>
          limit(async () => {
            if (!absent.has(id)) absent.set(id, await stillAbsent(source, id));
            if (!absent.get(id)) back.push(id);
          }),
        ),
      );
      if (back.length) await redis.srem(goneKey(layout, runId, t), ...back);
    }
  }
  for (const present of absent.values()) if (!present) returned++;

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
    await maybeFinishRun(ctx.runs, runId);
  }
  ctx.logger.warn({ runId, removals, returned, ignored }, 'held deletions confirmed by the operator');
  return { runId, removals, returned, ignored };
}

/** Re-check attempts per user: a 429 or a 5xx from the source waits and tries again. */
const RECHECK_ATTEMPTS = 10;

/**
 * Whether the source still answers 404 for the user. The re-check sends one GET per held user, so a
 * large hold meets the source's rate limit: a 429 waits its `Retry-After` (plus up to 250 ms of
 * jitter, so eight parallel checks do not return together), a transient error backs off linearly.
 */
async function stillAbsent(source: SourceConnector, id: string): Promise<boolean> {
  for (let attempt = 1; ; attempt++) {
    try {
      return (await source.getUser(id)) === null;
    } catch (err) {
      if (!isSyncError(err) || !err.retryable || attempt >= RECHECK_ATTEMPTS) throw err;
      await sleep((err.retryAfterMs ?? 500 * attempt) + Math.random() * 250);
    }
  }
}

/** `--confirm-deletes` refused (unknown run, nothing held): exit 1 with the message. */
export class ConfirmError extends Error {
  readonly code = 'E_CONFIRM_DELETES';
}
