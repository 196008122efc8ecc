import { type Job, type JobsOptions, UnrecoverableError } from 'bullmq';
import { z } from 'zod';
import { isSourceOrderChanged } from '../src/connectors/source/connector.js';
import { Bloom } from '../src/core/bloom.js';
import { isSyncError, SyncError } from '../src/core/errors.js';
import type { TargetId } from '../src/core/targets.js';
import type { SourceRecord } from '../src/core/types.js';
import { FULL_JITTER } from '../src/queue/backoff.js';
import { type JobContext, PRIORITY } from '../src/queue/context.js';
import { checkFailureRate, maybeFinishRun } from '../src/queue/run-lifecycle.js';
import { recordSeen, seenKey, startSeenCounts } from '../src/store/deletions.js';
import type { RunKind, ScanInfo } from '../src/store/run-record.js';
import type { CounterDelta } from '../src/store/run-store.js';
import { dropBlocksExcept } from '../src/store/scan-blocks.js';
import type { ChunkRead } from '../src/store/state-store.js';
import { reconcileDeletions } from './reconcile-deletions.js';
import { type BlockedRead, blockSetup, concludeBlocks, readWithBlocks } from './scan-blocks.js';
import { processChunk, readChunkFor, splitFresh } from './scan-chunk.js';

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

/**
 * Passes over the source one scan may make when the list moves under it (issue 8.1: a page whose
 * overlap record changed, or fewer distinct users than `/user/count`): the pass is restarted, users
 * already read are skipped by the seen set; after this many the scan ends failed and incomplete.
 */
export const SCAN_PASSES = 3;

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

  let index = 0; // stream position (checkpoint), every record read including duplicates
  let pages = 0;
  let enqueued = 0;
  let aborted = false;
  let duplicates = scan.duplicates ?? 0;
  let idless = 0; // rejected records without an id in the current pass (they cannot be deduplicated)
  let chunk: SourceRecord[] = [];
  // Issue 5: every id read (valid or rejected: a rejected user is still in the source) goes to the
  // run's seen set, so that after a complete scan the users it did not return can be found. Issue 8:
  // the same set finds duplicates (a user read twice because the list moved, or re-read by a restarted
  // pass) so that each user is counted and synced once. Recorded after the chunk was processed: an id
  // in the set is one whose outcome is recorded.
  const remember = !limited;
  // Issue 11: block conclusions (jobs/scan-blocks.ts); undefined in dry runs, --full and limited runs.
  const blocks = blockSetup(ctx, opts, targets, limited);
  let trusted = 0; // users counted from a conclusion
  let concluded = 0; // blocks concluded by this scan
  let eager = false; // the last chunk read trusted few users: read every state with the conclusions
  const cutKeys = new Set<string>(); // every block key cut (a complete scan from the start drops the rest)
  const { redis, layout } = ctx.runs.backing();
  /**
   * One chunk handed over: its read (states, links, markers and the duplicate check, one Redis call)
   * starts at once; its decision after the chunk before it was decided and checked (stream order, and
   * an abort found by that check stops it); then the check (failure rate, abort), then its booking
   * (seen ids, progress), which the next chunk's decision does not wait for. Until its seen ids are
   * recorded, `ids` stand in for them in the next chunk's duplicate check.
   */
  interface Stage {
    ids: string[];
    /** The scan's duplicate count after this chunk; undefined: not decided (aborted before). */
    decided: Promise<number | undefined>;
    checked: Promise<void>;
    booked: Promise<void>;
  }
  const handOver = (records: SourceRecord[], start: number, prev: Stage | undefined): Stage => {
    const positions = records.length;
    const end = start + positions;
    const recIds = records.map((r) => (r.ok ? r.user.id : r.userId));
    const ids = recIds.filter((id): id is string => !!id);
    // Chunks before the checkpoint are skipped or only re-add their jobs: no duplicate check (as before).
    const dedupe = end > checkpoint.enqueued && start >= checkpoint.flushed;
    // Issue 11: the duplicate check rides on the chunk's read (one call: seen set, states, links,
    // markers), sent while the chunk before is decided. The chunks up to two back are in the seen set
    // (their booking is done, see `admit`); the one just before stands in with its ids.
    // With blocks (jobs/scan-blocks.ts) the same call answers the blocks' conclusions, and only the
    // users no conclusion answers are read (a second call).
    const blocked =
      dedupe && blocks
        ? readWithBlocks(
            ctx,
            opts,
            targets,
            records,
            recIds,
            seenKey(layout, runId),
            prev?.ids,
            blocks,
            eager,
            bloom,
          )
        : undefined;
    // The next chunk reads every state at once when this one trusts less than half of its users.
    blocked?.then(
      (b) => {
        eager = b.trusted * 2 < b.fresh.length;
      },
      () => undefined,
    );
    const read =
      dedupe && !blocks ? readChunkFor(ctx, opts, targets, ids, seenKey(layout, runId)) : undefined;
    read?.catch(() => undefined); // awaited below

    let stated: Map<TargetId, ReadonlySet<string> | string> | undefined;
    let markers: string | undefined; // with blocks and Prelude: recordSeen counts the marked users
    const decided = (async () => {
      if (prev) {
        await prev.decided;
        await prev.checked;
      }
      if (aborted) return undefined;
      let fresh = records;
      let pre: ChunkRead | undefined;
      let extra: { counters: CounterDelta[]; codes?: Map<string, Int8Array> } | undefined;
      let b: BlockedRead | undefined;
      if (blocked) {
        b = await blocked;
        fresh = b.slow;
        pre = b.read;
        stated = b.stated;
        markers = b.markers;
        extra = { counters: b.counters, ...(b.open.length ? { codes: new Map() } : {}) };
        trusted += b.trusted;
        for (const k of b.keys) cutKeys.add(k);
      }
      const split = read ? splitFresh(records, recIds, targets, await read, prev?.ids) : b;
      if (split) {
        if (read) {
          fresh = split.fresh;
          pre = split.read;
          stated = split.stated;
        }
        const dups = positions - split.fresh.length;
        if (dups) {
          duplicates += dups;
          const sample = recIds.filter((_, i) => split.before[i]);
          log.warn(
            { duplicates: dups, sample: sample.slice(0, 5), total: duplicates },
            'source returned users already read in this scan (the list moved, or a restarted pass): counted once',
          );
        }
      }
      idless += fresh.filter((r) => !r.ok && !r.userId).length;
      const done = await processChunk(
        ctx,
        run.id,
        run.kind,
        opts,
        targets,
        fresh,
        start,
        positions,
        checkpoint,
        pre,
        extra,
      );
      if (b && extra?.codes && blocks) {
        const slowIds = b.slow.flatMap((r) => (r.ok ? [r.user.id] : []));
        concluded += await concludeBlocks(ctx, b.open, extra.codes, b.read, slowIds, blocks);
      }
      enqueued += done.added;
      stated ??= done.stated;
      return duplicates;
    })();
    let markChecked = () => {};
    const checked = new Promise<void>((resolve) => {
      markChecked = resolve;
    });
    const booked = (async () => {
      try {
        const dups = await decided;
        if (dups === undefined) return;
        // First (the next chunk's decision waits for it): the failure rate reads the counters
        // processChunk recorded; an abort asked stops the scan before another chunk is decided.
        const c = await checkFailureRate(ctx.runs, runId, opts.maxFailureRate, ctx.alerts).then(() =>
          ctx.runs.completion(runId),
        );
        // Issue 8.11: no record (Redis emptied under the run): stop reading, nobody waits for this scan.
        if (!c || c.abortReason) aborted = true;
        markChecked();
        await Promise.all([
          recordSeen(redis, layout, runId, ids, remember ? stated : undefined, markers),
          ctx.runs.updateScan(runId, { records: end - dups, pages, duplicates: dups }),
          job.updateProgress(end),
        ]);
      } finally {
        markChecked();
      }
    })();
    booked.catch(() => undefined); // awaited by `admit` or `drain`; never an unhandled rejection
    return { ids, decided, checked, booked };
  };
  // Issue 11 (re-run): chunks go through a pipeline, in stream order: while one is decided, the next
  // one's Redis read runs and the one after is read from the source (still one page ahead, see
  // `prefetch` below). At most three chunks in memory: two handed over and not yet booked, one filling.
  let stages: Stage[] = [];
  /** Hands the filled chunk over once the chunk two back is booked (its error, if it failed); false: aborted. */
  const admit = async (): Promise<boolean> => {
    if (stages.length >= 2) await stages.shift()!.booked;
    if (aborted) return false;
    const records = chunk;
    const start = index;
    chunk = [];
    index += records.length;
    stages.push(handOver(records, start, stages.at(-1)));
    return true;
  };
  /** Waits for every chunk handed over (the first error, if one failed; `quiet`: none). */
  const drain = async (quiet = false) => {
    const all = stages;
    stages = [];
    for (const st of all) await (quiet ? st.booked.catch(() => undefined) : st.booked);
  };

  // Before the first state is read: what deletion detection's fast path compares with (deletions.ts).
  if (remember) await startSeenCounts(redis, layout, runId, targets);
  // Issue 11 (re-run): when this attempt starts with an empty seen set, every id in it will have been
  // handed over by this attempt, so a Bloom filter of those ids rules out nearly every duplicate and
  // only its "maybe"s are checked in the seen set (src/core/bloom.ts). A resumed or retried scan (the
  // set already holds ids) checks every id there, as before.
  const bloom =
    blocks && (await redis.scard(seenKey(layout, runId))) === 0
      ? new Bloom(scan.total ?? 1 << 20)
      : undefined;

  let restarts = scan.restarts ?? 0;
  let seen = 0;
  for (;;) {
    const controller = new AbortController();
    try {
      idless = 0;
      const records: AsyncIterable<SourceRecord> = opts.users
        ? byIds(ctx, opts.users)
        : source.scan({
            pageSize: ctx.settings.pageSize,
            signal: controller.signal,
            onPage: () => pages++,
            // SOURCE_READ_AHEAD pages ahead (4): the source answers while this page is decided, and
            // a page that comes late does not stall the scan (with one page ahead, a source slower
            // to answer a page than the scan is to decide one sets the scan's pace). Not a chunk's
            // worth (10 at the defaults) by default: the identity service has no rate limit of
            // ours, and after a 401 the requests already sent are all refused too
            // (test/integration/engine/failure-paths.test.ts).
            prefetch: ctx.settings.readAhead,
          });
      for await (const rec of records) {
        if (opts.limit !== undefined && seen >= opts.limit) break;
        seen++;
        chunk.push(rec);
        if (chunk.length >= ctx.settings.chunkSize && !(await admit())) break;
      }
      if (chunk.length && !aborted) await admit();
      await drain();
      controller.abort();
      if (!limited && !aborted && scan.total !== undefined) {
        // Unique ids read vs /user/count before and after: fewer than both means a user present
        // throughout was missed (the overlap check catches a shift at a page boundary; this one the rest).
        const after = await source.count();
        const unique = (await redis.scard(seenKey(layout, runId))) + idless;
        if (unique < Math.min(scan.total, after))
          throw new SyncError(
            'transient',
            `source: the scan read ${unique} distinct users but /user/count answered ${scan.total} before and ${after} after`,
            { target: 'source', vendorCode: 'order_changed' },
          );
      }
      break;
    } catch (err) {
      controller.abort();
      const message = err instanceof Error ? err.message : String(err);
      // Issue 8.12: what was read before the failure is processed and counted, never lost.
      await drain(true);
      if (chunk.length && !aborted) await admit();
      await drain(true);
      if (isSourceOrderChanged(err)) {
        restarts++;
        if (restarts < SCAN_PASSES) {
          await ctx.runs.updateScan(runId, { restarts, error: message });
          log.warn({ err: message, restarts }, 'the source list moved during the scan: re-reading it');
          continue;
        }
        await failScan(ctx, runId, log, {
          error: `${message}; the list kept moving over ${SCAN_PASSES} passes: scan incomplete, no deletions concluded`,
          records: index - duplicates,
          pages,
          duplicates,
          restarts,
        });
        throw new UnrecoverableError(`scan failed: ${message}`);
      }
      const final = job.attemptsMade + 1 >= SCAN_ATTEMPTS || (isSyncError(err) && !err.retryable);
      if (!final) {
        await ctx.runs.updateScan(runId, { error: message, records: index - duplicates, pages, duplicates });
        log.warn(
          { err: message, records: index - duplicates },
          'source scan failed, retrying from the last checkpoint',
        );
        throw err;
      }
      await failScan(ctx, runId, log, { error: message, records: index - duplicates, pages, duplicates });
      throw new UnrecoverableError(`scan failed: ${message}`);
    }
  }
  const records = index - duplicates;
  if (duplicates) log.warn({ duplicates }, 'duplicate ids in this scan were counted once');
  if (!remember) await redis.unlink(seenKey(layout, runId));
  const complete = !limited && !aborted && (await ctx.runs.completion(runId))?.abortReason === undefined;
  // Conclusions of blocks this scan no longer cut (users added or removed at their edges): dropped,
  // when the scan read the whole source in this attempt (a resumed one skipped the chunks before its
  // checkpoint, whose blocks it did not cut).
  if (complete && blocks && checkpoint.flushed === 0 && checkpoint.enqueued === 0)
    await dropBlocksExcept(redis, layout, cutKeys);
  if (complete) {
    // Before the scan is marked done: removal jobs must be pending before the run can finish.
    await ctx.runs.updateScan(runId, { complete, records, pages });
    try {
      // Users the re-check finds again are synced in this run, as the scan would have.
      const syncFound = async (found: SourceRecord[]) =>
        (await processChunk(ctx, run.id, run.kind, opts, targets, found, -1, 0, checkpoint)).added;
      await reconcileDeletions(ctx, run, targets, syncFound);
    } catch (err) {
      // Retried like a failed page (the rescan skips checkpointed chunks; each target's departures
      // are recorded once). On the last attempt the run ends `failed` rather than hang in `running`.
      const message = `deletion detection failed: ${err instanceof Error ? err.message : String(err)}`;
      if (job.attemptsMade + 1 < SCAN_ATTEMPTS) throw err;
      await failScan(ctx, runId, log, { error: message, records, pages });
      throw new UnrecoverableError(message);
    }
  }
  await ctx.runs.updateScan(runId, {
    status: aborted ? 'aborted' : 'done',
    complete,
    records,
    pages,
    ...(blocks ? { trusted, concluded } : {}),
  });
  log.info(
    { records, pages, enqueued, complete, duplicates, restarts, trusted, concluded },
    'source scan finished',
  );
  await maybeFinishRun(ctx.runs, runId, ctx.alerts);
  return { records, enqueued, complete };
}

/** Ends the scan `failed` and incomplete (so no deletion is concluded) and lets the run finish. */
async function failScan(
  ctx: JobContext,
  runId: string,
  log: JobContext['logger'],
  info: { error: string; records: number; pages: number; duplicates?: number; restarts?: number },
): Promise<void> {
  await ctx.runs.updateScan(runId, { status: 'failed', complete: false, ...info });
  log.error(
    { err: info.error, records: info.records },
    `source scan failed after ${info.records} source records: the run is incomplete`,
  );
  await maybeFinishRun(ctx.runs, runId, ctx.alerts);
}

async function* byIds(ctx: JobContext, ids: string[]): AsyncIterable<SourceRecord> {
  const source = ctx.source();
  for (const id of ids) {
    const rec = await source.getUser(id);
    yield rec ?? { ok: false, userId: id, reason: 'not found in the source (404)' };
  }
}
