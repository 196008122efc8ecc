import type { JobsOptions } from 'bullmq';
import { diffFields } from '../src/core/diff.js';
import { RejectedRecordError } from '../src/core/errors.js';
import { hashFields } from '../src/core/hashing.js';
import type { TargetId } from '../src/core/targets.js';
import type { FieldMap, SourceRecord, SourceUser } from '../src/core/types.js';
import type { JobContext } from '../src/queue/context.js';
import type { RunItem, RunKind, RunOptions } from '../src/store/run-record.js';
import type { CounterDelta } from '../src/store/run-store.js';
import { type ChunkRead, type TargetState, unlinkedIsFresh } from '../src/store/state-store.js';
import { heldItem, jobLinkHints, linkChunk, linkDecision, needsLink } from './link-steps.js';
import * as sync from './sync.js';
import * as syncBatch from './sync-batch.js';
import * as steps from './user-steps.js';

/**
 * The scan's decision for one chunk of source records (jobs/scan.ts pages the source and calls it):
 * per user and enabled target, same payload as last written -> `unchanged` with no job and no request;
 * fresh unlinked marker -> `unlinked`; mapping refused -> `rejected`; otherwise a sync job.
 */

/** A user's outcome in one target as a block conclusion holds it (jobs/scan-blocks.ts); -1: anything else. */
export const CODE_UNCHANGED = 0;
export const CODE_UNLINKED = 1;
export const CODE_UNLINKED_STATED = 2;

/** Jobs per `addBulk` call: one Redis transaction per call, kept short (other clients wait on it). */
const ADD_BULK_MAX = 500;

/** Where a restarted scan resumes: records up to `enqueued` are done; up to `flushed`, counted but their jobs may be missing. */
export interface Checkpoint {
  flushed: number;
  enqueued: number;
}

/** What `processChunk` did: users given a sync job (one each, or a place in a batch), and per target the users whose state it read (issue 11). */
export interface ChunkResult {
  added: number;
  /**
   * Per target, ids of the chunk's users that had a state when read (`recordSeen` counts them); empty
   * when the caller passed the read (`pre`).
   */
  stated: Map<TargetId, Set<string>>;
}

interface SyncJobSpec {
  name: string;
  data: sync.SyncPayload;
  opts: JobsOptions;
  /** The user's place in the chunk (its batch, jobs/sync-batch.ts). */
  at: number;
}

/**
 * Everything a chunk's decision reads, for `ids` (issue 11: one Lua call): each target's states and,
 * with Prelude, its links and unlinked markers; with `seen` (the run's seen set), which ids it holds
 * (the scan's duplicate check, in the same call).
 */
export function readChunkFor(
  ctx: JobContext,
  opts: RunOptions,
  targets: readonly TargetId[],
  ids: string[],
  seen?: string,
): Promise<ChunkRead> {
  const prelude = targets.includes('prelude');
  return ctx.state.readChunk(targets, ids, {
    upgrade: !opts.dryRun,
    prelude,
    ...(seen !== undefined ? { seen } : {}),
  });
}

/**
 * Decides one chunk of source records for every target, records what needs no job (counts and items
 * plus the checkpoint, in one atomic step), marks the jobs pending, then adds them. Returns the jobs
 * added and the users it read a state for. A chunk before the checkpoint is skipped; one that was
 * counted but whose jobs may be missing (crash between the two steps) only re-adds its jobs, whose ids
 * collapse duplicates. `pre`: what `readChunkFor` answered for the chunk's valid users, in order (the
 * scan reads it with its duplicate check); read here when absent. `extra` (jobs/scan-blocks.ts): counts
 * of users decided by block conclusions, recorded with the chunk's; `codes` filled per user and
 * target with what a conclusion holds (-1: anything else).
 */
export async function processChunk(
  ctx: JobContext,
  runId: string,
  kind: RunKind,
  opts: RunOptions,
  targets: TargetId[],
  records: SourceRecord[],
  start: number,
  positions: number,
  checkpoint: Checkpoint,
  pre?: ChunkRead,
  extra?: { counters: CounterDelta[]; codes?: Map<string, Int8Array> },
): Promise<ChunkResult> {
  // start -1: users the deletion re-check found again, outside the stream (no checkpoint).
  const outside = start < 0;
  const end = start + positions;
  if (!outside && end <= checkpoint.enqueued) return { added: 0, stated: new Map() };
  const countOnly = !outside && start < checkpoint.flushed; // already counted: only (re-)add its jobs
  const now = Date.now();
  const counters: CounterDelta[] = [...(extra?.counters ?? [])];
  const items: RunItem[] = [];
  const planLines: unknown[] = [];
  const jobs = new Map<TargetId, SyncJobSpec[]>();
  const users = records.filter((r): r is { ok: true; user: SourceUser } => r.ok).map((r) => r.user);
  const rejectedRecords = records.filter((r): r is { ok: false; userId?: string; reason: string } => !r.ok);
  const ids = users.map((u) => u.id);
  const prelude = targets.includes('prelude');
  // Issue 11: every read the chunk needs in one call (states, links, unlinked markers).
  const read = pre ?? (await readChunkFor(ctx, opts, targets, ids));
  const allStates = read.states;
  const stored = prelude && ctx.links ? read.links : new Map<string, string>();
  const unlinkedPrelude = read.unlinked;
  const stated = new Map<TargetId, Set<string>>();
  // With `pre`, the caller has the read and counts from it (recordSeen's flags).
  if (!pre)
    targets.forEach((t, k) => {
      const states = allStates[k]!;
      stated.set(t, new Set(ids.filter((_, i) => states[i] != null)));
    });
  // Per target and user: the payload, and whether it is the one last written. Once: the Prelude link
  // step asks the same question before the decisions.
  const decided = targets.map((target, k) => mapAll(ctx, target, users, allStates[k]!));
  // Issue 10: the chunk's unlinked users are looked up (batch_lookup, 100 per request) before deciding.
  const { links, failed: noLink } = targets.includes('prelude')
    ? await linkChunk(ctx, runId, opts, users, stored, now, {
        decided: decided[targets.indexOf('prelude')]!,
        markers: unlinkedPrelude ?? [],
      })
    : { links: stored, failed: new Map<string, Record<string, unknown>>() };
  const linkFirst = prelude && needsLink(ctx);
  const codes = extra?.codes;
  if (codes) for (const u of users) codes.set(u.id, new Int8Array(targets.length).fill(-1));
  const unlinkedNow: [SourceUser, FieldMap][] = [];

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
    const t = targets.indexOf(target);
    const states = allStates[t]!;
    const mapped = decided[t]!;
    const unlinked = target === 'prelude' && unlinkedPrelude ? unlinkedPrelude : ids.map(() => null);
    const specs: SyncJobSpec[] = [];
    let unchanged = 0;
    for (const [i, user] of users.entries()) {
      const m = mapped[i]!;
      if (m.rejected) {
        bump('rejected');
        items.push({
          userId: user.id,
          target,
          outcome: 'rejected',
          reason: m.rejected.reason,
          attempts: 0,
          requests: [],
          at: now,
        });
        continue;
      }
      const next = m.next;
      const stored = states[i] ?? null;
      if (!opts.full && m.same) {
        unchanged++; // the common case of a re-run: one counter, not a map update per user
        if (codes) codes.get(user.id)![t] = CODE_UNCHANGED;
        continue;
      }
      const hash = hashFields(next);
      const linkWait =
        linkFirst && target === 'prelude' ? linkDecision(user, links, noLink, connector) : undefined;
      // A link found since the user was marked unlinked (lookup, import) is worth a PATCH now.
      const fresh = unlinkedIsFresh(unlinked[i] ?? null, hash, ctx.settings.unlinkedRecheckMs, now);
      if (!opts.full && linkWait !== 'linked' && fresh) {
        bump('unlinked');
        if (codes) codes.get(user.id)![t] = stored ? CODE_UNLINKED_STATED : CODE_UNLINKED;
        continue;
      }
      const held = heldItem(linkWait, user.id, noLink, connector, opts.dryRun, now);
      if (held) {
        if (held.outcome === 'unlinked' && !opts.dryRun) unlinkedNow.push([user, next]);
        items.push(held);
        bump(held.outcome);
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
          ...(linkedId ? { linkedId } : { lookedUp: linkWait === 'create' }),
        });
        const outcome: RunItem['outcome'] = previous === null ? 'created' : 'updated';
        bump(outcome);
        bump('planned', planned.length);
        if (linkWait === 'create' && planned.length) bump('creates'); // at most: a 409 leaves it unlinked
        const item = { userId: user.id, target, outcome, attempts: 0, requests: [], at: now, dryRun: true };
        items.push({ ...item, diff: diffFields(previous, next) });
        if (opts.plan) planLines.push(...planned.map((p) => sync.planLine(target, user.id, p, opts.showPii)));
        continue;
      }
      specs.push({
        name: sync.name,
        data: {
          ...{ runId, target, userId: user.id, user: pickUser(user), full: opts.full, dryRun: opts.dryRun },
          ...jobLinkHints(linkWait, links.get(user.id), opts.dryRun),
        },
        opts: { ...sync.options(kind, ctx.settings), jobId: sync.jobId(target, runId, user.id) },
        at: i,
      });
    }
    if (unchanged) bump('unchanged', unchanged);
    for (const [counter, n] of tally) counters.push([target, counter as CounterDelta[1], n]);
    jobs.set(target, specs);
  }

  // One call for the chunk's users no lookup found (was one round trip each, in turn).
  await ctx.state.markUnlinkedMany(
    'prelude',
    unlinkedNow.map(([user, next]) => [user.id, next] as const),
    now,
  );
  if (!countOnly) {
    await ctx.runs.record(runId, {
      counters,
      items,
      raw: outside ? [] : [['scanFlushed', positions]],
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
      specs.map((s) => steps.settleMember(target, s.data.userId)),
    );
    const queue = ctx.syncQueues[target]!;
    const bulk = Math.min(ctx.settings.chunkSize, ADD_BULK_MAX);
    const batched = outside || opts.dryRun ? specs : batches(specs, ctx.settings.batchSize, start, kind, ctx);
    for (let i = 0; i < batched.length; i += bulk) {
      await queue.addBulk(batched.slice(i, i + bulk));
    }
    added += specs.length; // users, not jobs (a batch job holds several)
  }
  if (!outside) await ctx.runs.setScanCheckpoint(runId, 'scanEnqueued', end);
  return { added, stated };
}

/**
 * Issue 11.4: the chunk's sync jobs of one target, grouped into batch jobs (jobs/sync-batch.ts) by the
 * users' places in the chunk: window w holds places [w * size, (w + 1) * size), so a scan that re-adds
 * the chunk's jobs after a crash (some of its users written since, so no longer changed) makes the
 * same job ids and BullMQ collapses them. A window with one user, and a user whose Prelude lookup
 * the job must make (`lookup`), keep a single job.
 */
function batches(
  specs: SyncJobSpec[],
  size: number,
  start: number,
  kind: RunKind,
  ctx: JobContext,
): { name: string; data: unknown; opts: JobsOptions }[] {
  if (size <= 1) return specs;
  const out: { name: string; data: unknown; opts: JobsOptions }[] = [];
  const windows = new Map<number, SyncJobSpec[]>();
  for (const s of specs) {
    if (s.data.lookup || s.data.link) out.push(s);
    else {
      const w = Math.floor(s.at / size);
      windows.set(w, [...(windows.get(w) ?? []), s]);
    }
  }
  for (const [w, group] of windows) {
    if (group.length === 1) {
      out.push(group[0]!);
      continue;
    }
    const { runId, target, full } = group[0]!.data;
    const users = Object.fromEntries(group.map((s) => [s.opts.jobId!, s.data.user]));
    const data: syncBatch.SyncBatchPayload = { runId, target, full, users };
    const jobId = syncBatch.jobId(target, runId, start, w * size);
    out.push({ name: syncBatch.name, data, opts: { ...syncBatch.options(kind, ctx.settings), jobId } });
  }
  return out;
}

/** A user's payload for one target and whether it is the one last written, or why it is refused. */
export type Mapped =
  | { next: FieldMap; same: boolean; rejected?: undefined }
  | { rejected: RejectedRecordError };

/** `connector.map` and `sameAs` of every user of a chunk for one target (`states` in the same order). */
function mapAll(
  ctx: JobContext,
  target: TargetId,
  users: readonly SourceUser[],
  states: readonly (TargetState | null)[],
): Mapped[] {
  const connector = ctx.targets[target]!;
  return users.map((user, i) => {
    try {
      const next = connector.map(user);
      return { next, same: ctx.state.sameAs(target, states[i] ?? null, user.id, next) };
    } catch (err) {
      if (err instanceof RejectedRecordError) return { rejected: err };
      throw err;
    }
  });
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

/**
 * A chunk read with its duplicate check (`read.seen` answers `ids`, the records' ids in order):
 * `before`, per record, whether its id is already in the run's seen set, in `also` (ids read but not
 * recorded yet) or earlier in the chunk; the
 * fresh records; the read of their valid users, in order (what `processChunk` takes as `pre`); and per
 * target the flags `recordSeen` counts ('1': a fresh valid user with a state; answers `ids`).
 */
export function splitFresh(
  records: readonly SourceRecord[],
  recIds: readonly (string | undefined)[],
  targets: readonly TargetId[],
  read: ChunkRead,
  also?: readonly string[],
): { before: boolean[]; fresh: SourceRecord[]; read: ChunkRead; stated: Map<TargetId, string> } {
  const member = read.seen ?? [];
  const { before, idx } = duplicates(recIds, member, also);
  const rows: number[] = []; // index in `ids` of each fresh valid user
  const counted = new Uint8Array(member.length); // per id: a fresh valid user
  for (let i = 0; i < records.length; i++) {
    if (before[i] || idx[i]! < 0 || !records[i]!.ok) continue;
    rows.push(idx[i]!);
    counted[idx[i]!] = 1;
  }
  const fresh = rows.length === records.length ? records.slice() : records.filter((_, i) => !before[i]);
  const identity = rows.length === member.length;
  const stated = new Map<TargetId, string>();
  const states = read.states;
  targets.forEach((t, n) => {
    const col = states[n]!;
    let flags = '';
    for (let j = 0; j < member.length; j++) flags += counted[j] === 1 && col[j] != null ? '1' : '0';
    stated.set(t, flags);
  });
  const picked: ChunkRead = identity
    ? read
    : {
        states: states.map((col) => rows.map((j) => col[j] ?? null)),
        links: read.links,
        unlinked: read.unlinked ? rows.map((j) => read.unlinked![j] ?? null) : null,
      };
  return { before, fresh, read: picked, stated };
}

/**
 * Per record, whether it is a duplicate (its id in the seen set, in `also`: ids read but not yet in
 * the set, or earlier in the chunk), and its index in the defined ids (-1: none). `seen` answers the
 * defined ids in order.
 */
export function duplicates(
  recIds: readonly (string | undefined)[],
  seen: readonly boolean[],
  also: readonly string[] | undefined,
): { before: boolean[]; idx: number[] } {
  const local = new Set<string>(also);
  const before = new Array<boolean>(recIds.length).fill(false);
  const idx = new Array<number>(recIds.length).fill(-1); // record -> index in `ids`
  let k = 0;
  for (let i = 0; i < recIds.length; i++) {
    const id = recIds[i];
    if (!id) continue;
    const j = k++;
    idx[i] = j;
    const dup = seen[j] === true || local.has(id);
    before[i] = dup;
    if (!dup) local.add(id);
  }
  return { before, idx };
}
