import { type Job, type JobsOptions, UnrecoverableError } from 'bullmq';
import { z } from 'zod';
import type { TargetId } from '../src/config/schema.js';
import { isSyncError, RejectedRecordError } from '../src/connectors/errors.js';
import type { FieldMap, SourceRecord, SourceUser } from '../src/connectors/types.js';
import { recordSeen } from '../src/pipeline/deletions.js';
import { diffFields } from '../src/pipeline/diff.js';
import { hashFields } from '../src/pipeline/hashing.js';
import type { RunItem, RunKind, RunOptions, ScanInfo } from '../src/pipeline/run-record.js';
import type { CounterDelta } from '../src/pipeline/run-store.js';
import { unlinkedIsFresh } from '../src/pipeline/state-store.js';
import { FULL_JITTER } from '../src/queue/backoff.js';
import { type JobContext, PRIORITY } from '../src/queue/context.js';
import { checkFailureRate, maybeFinishRun } from '../src/queue/run-lifecycle.js';
import { reconcileDeletions } from './reconcile-deletions.js';
import * as sync from './sync.js';

/**
 * Pages the source and decides, per user and enabled target, what to do: same hash as last written ->
 * `unchanged` with no job and no request; fresh unlinked marker -> `unlinked`; mapping refused ->
 * `rejected`; otherwise a sync job in that target's queue, added with `addBulk` in chunks.
 * One scan job per run, in the `scan` queue, so any worker process (backfill or daemon) can run it.
 */
export const name = 'scan';

export const payloadSchema = z.object({ runId: z.string().min(1) });
export type ScanPayload = z.infer<typeof payloadSchema>;

export interface ScanResult {
  records: number;
  enqueued: number;
  complete: boolean;
}

/** Scan attempts: a page that fails after HTTP-level retries is retried from the last checkpoint. */
export const SCAN_ATTEMPTS = 3;

export function jobId(runId: string): string {
  return `scan-${runId}`;
}

export function options(runId: string, kind: RunKind): JobsOptions {
  return {
    jobId: jobId(runId),
    priority: PRIORITY[kind],
    attempts: SCAN_ATTEMPTS,
    backoff: { type: FULL_JITTER },
    removeOnComplete: { age: 7 * 86_400, count: 1000 },
    removeOnFail: { age: 30 * 86_400 },
  };
}

/** Where a restarted scan resumes: records up to `enqueued` are done; up to `flushed`, counted but their jobs may be missing. */
interface Checkpoint {
  flushed: number;
  enqueued: number;
}

export async function handler(job: Job, ctx: JobContext): Promise<ScanResult> {
  const { runId } = payloadSchema.parse(job.data);
  const run = await ctx.runs.get(runId);
  if (run?.status !== 'running') return { records: 0, enqueued: 0, complete: false };
  const log = ctx.logger.child({ job: job.id, runId, kind: run.kind });
  const opts = run.options;
  const targets = opts.targets.filter((t) => ctx.targets[t] !== undefined);
  const missing = opts.targets.filter((t) => ctx.targets[t] === undefined);
  if (missing.length)
    throw new UnrecoverableError(`targets not enabled in this worker: ${missing.join(', ')}`);

  const checkpoint = await ctx.runs.scanCheckpoint(runId);
  const limited = opts.users !== undefined || opts.limit !== undefined;
  const source = ctx.source();
  let scan: ScanInfo = await ctx.runs.updateScan(runId, { status: 'running', limited });
  if (scan.total === undefined) {
    const total = opts.users ? opts.users.length : await source.count().catch(() => undefined);
    if (total !== undefined)
      scan = await ctx.runs.updateScan(runId, { total: opts.limit ? Math.min(opts.limit, total) : total });
  }
  if (checkpoint.enqueued > 0) log.info({ checkpoint }, 'scan resumes after a restart');

  let index = 0;
  let pages = 0;
  let enqueued = 0;
  let aborted = false;
  let chunk: SourceRecord[] = [];
  // Issue 5: an unlimited scan remembers every id it read (valid or rejected: a rejected user is
  // still in the source), so that after a complete scan the users it did not return can be found.
  const remember = !limited;
  const { redis, layout } = ctx.runs.backing();
  const flush = async () => {
    if (remember) {
      const ids = chunk.map((r) => (r.ok ? r.user.id : r.userId)).filter((id): id is string => !!id);
      await recordSeen(redis, layout, runId, ids);
    }
    const start = index;
    index += chunk.length;
    enqueued += await processChunk(ctx, run.id, run.kind, opts, targets, chunk, start, checkpoint);
    chunk = [];
    await ctx.runs.updateScan(runId, { records: index, pages });
    await checkFailureRate(ctx.runs, runId, opts.maxFailureRate);
    const c = await ctx.runs.completion(runId);
    // Issue 8.11: no record (Redis emptied under the run): stop reading, nobody waits for this scan.
    if (!c || c.abortReason) aborted = true;
  };

  try {
    const controller = new AbortController();
    const records: AsyncIterable<SourceRecord> = opts.users
      ? byIds(ctx, opts.users)
      : source.scan({ pageSize: ctx.settings.pageSize, signal: controller.signal, onPage: () => pages++ });
    let seen = 0;
    for await (const rec of records) {
      if (opts.limit !== undefined && seen >= opts.limit) break;
      seen++;
      chunk.push(rec);
      if (chunk.length >= ctx.settings.chunkSize) await flush();
      if (aborted) break;
      if (seen % 1000 === 0) await job.updateProgress(seen);
    }
    if (chunk.length && !aborted) await flush();
    controller.abort();
  } catch (err) {
    const final = job.attemptsMade + 1 >= SCAN_ATTEMPTS || (isSyncError(err) && !err.retryable);
    const message = err instanceof Error ? err.message : String(err);
    if (!final) {
      await ctx.runs.updateScan(runId, { error: message, records: index, pages });
      log.warn({ err: message, records: index }, 'source scan failed, retrying from the last checkpoint');
      throw err;
    }
    await ctx.runs.updateScan(runId, {
      status: 'failed',
      complete: false,
      error: message,
      records: index,
      pages,
    });
    log.error({ err: message, records: index }, 'source scan failed: the run is incomplete');
    await maybeFinishRun(ctx.runs, runId);
    throw new UnrecoverableError(`scan failed: ${message}`);
  }
  const complete = !limited && !aborted && (await ctx.runs.completion(runId))?.abortReason === undefined;
  if (complete) {
    // Before the scan is marked done: removal jobs must be pending before the run can finish.
    await ctx.runs.updateScan(runId, { complete, records: index, pages });
    try {
      await reconcileDeletions(ctx, run, targets);
    } catch (err) {
      // Retried like a failed page (the rescan skips checkpointed chunks; each target's departures
      // are recorded once). On the last attempt the run ends `failed` rather than hang in `running`.
      const message = `deletion detection failed: ${err instanceof Error ? err.message : String(err)}`;
      if (job.attemptsMade + 1 < SCAN_ATTEMPTS) throw err;
      await ctx.runs.updateScan(runId, {
        status: 'failed',
        complete: false,
        error: message,
        records: index,
        pages,
      });
      log.error({ err: message }, 'deletion detection failed: the run is incomplete');
      await maybeFinishRun(ctx.runs, runId);
      throw new UnrecoverableError(message);
    }
  }
  await ctx.runs.updateScan(runId, { status: aborted ? 'aborted' : 'done', complete, records: index, pages });
  log.info({ records: index, pages, enqueued, complete }, 'source scan finished');
  await maybeFinishRun(ctx.runs, runId);
  return { records: index, enqueued, complete };
}

async function* byIds(ctx: JobContext, ids: string[]): AsyncIterable<SourceRecord> {
  const source = ctx.source();
  for (const id of ids) {
    const rec = await source.getUser(id);
    yield rec ?? { ok: false, userId: id, reason: 'not found in the source (404)' };
  }
}

interface SyncJobSpec {
  name: string;
  data: sync.SyncPayload;
  opts: JobsOptions;
}

/**
 * Decides one chunk of source records for every target, records what needs no job (counts and items
 * plus the checkpoint, in one atomic step), marks the jobs pending, then adds them. Returns the jobs
 * added. A chunk before the checkpoint is skipped; one that was counted but whose jobs may be missing
 * (crash between the two steps) only re-adds its jobs, whose ids collapse duplicates.
 */
async function processChunk(
  ctx: JobContext,
  runId: string,
  kind: RunKind,
  opts: RunOptions,
  targets: TargetId[],
  records: SourceRecord[],
  start: number,
  checkpoint: Checkpoint,
): Promise<number> {
  const end = start + records.length;
  if (end <= checkpoint.enqueued) return 0;
  const countOnly = start < checkpoint.flushed; // already counted: only (re-)add its jobs
  const now = Date.now();
  const counters: CounterDelta[] = [];
  const items: RunItem[] = [];
  const planLines: unknown[] = [];
  const jobs = new Map<TargetId, SyncJobSpec[]>();
  const users = records.filter((r): r is { ok: true; user: SourceUser } => r.ok).map((r) => r.user);
  const rejectedRecords = records.filter((r): r is { ok: false; userId?: string; reason: string } => !r.ok);
  const ids = users.map((u) => u.id);
  const links =
    targets.includes('prelude') && ctx.links ? await ctx.links.getMany(ids) : new Map<string, string>();

  for (const target of targets) {
    const connector = ctx.targets[target]!;
    const tally = new Map<string, number>();
    const bump = (o: string, by = 1) => tally.set(o, (tally.get(o) ?? 0) + by);
    for (const r of rejectedRecords) {
      bump('rejected');
      items.push({
        userId: r.userId ?? '(no id)',
        target,
        outcome: 'rejected',
        reason: r.reason,
        attempts: 0,
        requests: [],
        at: now,
      });
    }
    const states = await ctx.state.getMany(target, ids);
    const unlinked =
      target === 'prelude' ? await ctx.state.getUnlinkedMany(target, ids) : ids.map(() => null);
    const specs: SyncJobSpec[] = [];
    for (const [i, user] of users.entries()) {
      let next: FieldMap;
      try {
        next = connector.map(user);
      } catch (err) {
        if (!(err instanceof RejectedRecordError)) throw err;
        bump('rejected');
        items.push({
          userId: user.id,
          target,
          outcome: 'rejected',
          reason: err.reason,
          attempts: 0,
          requests: [],
          at: now,
        });
        continue;
      }
      const hash = hashFields(next);
      const stored = states[i] ?? null;
      if (!opts.full && stored?.hash === hash) {
        bump('unchanged');
        continue;
      }
      if (!opts.full && unlinkedIsFresh(unlinked[i] ?? null, hash, ctx.settings.unlinkedRecheckMs, now)) {
        bump('unlinked');
        continue;
      }
      if (opts.dryRun && !opts.full) {
        // A dry run without --full needs no request at all: plan from the last written state.
        const previous = stored?.fields ?? null;
        const linkedId = links.get(user.id);
        const planned = connector.plan({
          userId: user.id,
          next,
          previous,
          user,
          ...(linkedId ? { linkedId } : {}),
        });
        const outcome = previous === null ? 'created' : 'updated';
        bump(outcome);
        bump('planned', planned.length);
        items.push({
          userId: user.id,
          target,
          outcome,
          diff: diffFields(previous, next),
          attempts: 0,
          requests: [],
          dryRun: true,
          at: now,
        });
        if (opts.plan) planLines.push(...planned.map((p) => sync.planLine(target, user.id, p, opts.showPii)));
        continue;
      }
      specs.push({
        name: sync.name,
        data: { runId, target, userId: user.id, user: pickUser(user), full: opts.full, dryRun: opts.dryRun },
        opts: { ...sync.options(kind, ctx.settings), jobId: sync.jobId(target, runId, user.id) },
      });
    }
    for (const [counter, n] of tally) counters.push([target, counter as CounterDelta[1], n]);
    jobs.set(target, specs);
  }

  if (!countOnly) {
    await ctx.runs.record(runId, {
      counters,
      items,
      raw: [['scanFlushed', records.length]],
      pii: opts.showPii,
      now,
    });
    await ctx.runs.addPlan(runId, planLines);
  }
  // Pending before the jobs exist: a job that finishes at once must find its member pending.
  let added = 0;
  for (const [target, specs] of jobs) {
    await ctx.runs.addPending(
      runId,
      specs.map((s) => sync.settleMember(target, s.data.userId)),
    );
    const queue = ctx.syncQueues[target]!;
    for (let i = 0; i < specs.length; i += ctx.settings.chunkSize) {
      await queue.addBulk(specs.slice(i, i + ctx.settings.chunkSize));
    }
    added += specs.length;
  }
  await ctx.runs.setScanCheckpoint(runId, 'scanEnqueued', end);
  return added;
}

/** Only the four fields the mapping reads go into job data. */
function pickUser(user: SourceUser): sync.SyncPayload['user'] {
  const out: sync.SyncPayload['user'] = { id: user.id };
  // Absent stays absent and null stays null: the job maps exactly the user the scan hashed.
  if (user.firstName !== undefined) out.firstName = user.firstName;
  if (user.lastName !== undefined) out.lastName = user.lastName;
  if (user.email !== undefined) out.email = user.email;
  return out;
}
