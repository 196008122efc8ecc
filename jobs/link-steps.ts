import { LOOKUP_BATCH, lookupEmail } from '../src/connectors/prelude/lookup.js';
import type { FoundLinkResult, TargetConnector, TargetLinker } from '../src/connectors/types.js';
import { isSyncError } from '../src/core/errors.js';
import { hashFields } from '../src/core/hashing.js';
import type { FieldMap, RequestRecord, SourceUser } from '../src/core/types.js';
import type { JobContext, RequestScope } from '../src/queue/context.js';
import { formatWait } from '../src/queue/run-lifecycle.js';
import { RATE_LIMITED_STOP, type RunItem, type RunOptions } from '../src/store/run-record.js';
import { type UnlinkedMarker, unlinkedIsFresh } from '../src/store/state-store.js';

/**
 * Issue 10: linking source users to Prelude's own users (`usr_…`) before any PATCH.
 *
 * Where: in the scan's chunk processing, before Prelude's jobs are decided. The chunk's users without a
 * link, whose payload changed and who are not remembered unlinked (UNLINKED_RECHECK), are looked up with
 * `batch_lookup`, one request per 100 users, through the connector's http client (which awaits the
 * engine's Prelude throttle before every try). Found links go into the link table with HSETNX (an
 * imported link always wins; a lookup repeated after a crash stores nothing new, so no link is lost or
 * duplicated), before the chunk's checkpoint: a crash re-processes the chunk and at worst repeats the
 * lookup. The lookups are counted in the run record at once (`lookups` and `requests` of prelude), so a
 * repeated lookup is counted as the request it was. Lookups are reads: a dry run sends them (its plan
 * then shows the real `usr_` ids) but stores no link.
 */
export interface ChunkLinks {
  /** source id -> Prelude user id, after the lookup. */
  links: Map<string, string>;
  /**
   * Users whose batch_lookup failed (after the HTTP client's retries): each gets a sync job that looks
   * it up on its own (`lookup: true`), so a lasting failure ends in the dead letters; in a dry run
   * (no jobs) they are counted `failed` with the lookup's error.
   */
  failed: Map<string, Record<string, unknown>>;
}

/** What the scan already knows of a chunk's users (same order as its `users`), issue 11. */
export interface ChunkPreludeReads {
  /** Prelude's payload of each user and whether it is the one last written (scan-chunk.ts). */
  decided: readonly ({ next: FieldMap; same: boolean } | { rejected: unknown })[];
  markers: readonly (UnlinkedMarker | null)[];
}

export async function linkChunk(
  ctx: JobContext,
  runId: string,
  opts: RunOptions,
  users: readonly SourceUser[],
  links: Map<string, string>,
  now: number,
  read: ChunkPreludeReads,
): Promise<ChunkLinks> {
  const linker = ctx.targets.prelude?.linker;
  const failed = new Map<string, Record<string, unknown>>();
  if (!linker?.looksUp || !ctx.links) return { links, failed };
  // Issue 11: what the scan already read and compared is used as is (one read, one compare a user).
  const candidates = users.filter((user, u) => {
    if (links.has(user.id)) return false;
    const d = read.decided[u]!;
    if ('rejected' in d) return false; // rejected by the scan, nothing to look up
    if (opts.full) return true;
    // unchanged (nothing to write) or remembered unlinked: no lookup needed, unless --full
    const marker = read.markers[u] ?? null;
    const fresh =
      marker !== null && unlinkedIsFresh(marker, hashFields(d.next), ctx.settings.unlinkedRecheckMs, now);
    return !(d.same || fresh);
  });
  if (candidates.length === 0) return { links, failed };
  // One lookup per 100 users, each on its own: a batch that fails (after the HTTP client's retries:
  // batch_lookup is a read, resent like one) costs only its own users, the others keep their links.
  const found: FoundLinkResult[] = [];
  for (let i = 0; i < candidates.length; i += LOOKUP_BATCH) {
    const batch = candidates.slice(i, i + LOOKUP_BATCH);
    // Every try the throttle grants is counted (HTTP-level retries included), failed ones too.
    const scope: RequestScope = { sent: 0 };
    try {
      const got = (await linker.lookup(batch, scope)).found;
      found.push(...got);
      // Stored per batch, not per chunk (5,000 users): a process killed among a chunk's 50 lookups
      // keeps what it found, and the next run looks up only the rest (test/reliability/prelude-link-crash).
      if (!opts.dryRun && got.length) await ctx.links.addFound(got, now);
    } catch (err) {
      // Nothing is written for these users from the scan and nothing is marked unlinked: each gets a
      // sync job that looks it up again (jobs/sync.ts `lookup`), under the job's retries, 429 waits and
      // auth stop, and ends in the dead letters (`retry-failed`) if Prelude still fails.
      const lastError = errorOf(err);
      ctx.logger.warn(
        { runId, target: 'prelude', users: batch.length, err: lastError.message },
        opts.dryRun
          ? 'prelude: batch_lookup failed; these users are counted failed in this dry run'
          : 'prelude: batch_lookup failed; each of these users is looked up again by its own sync job',
      );
      for (const u of batch) failed.set(u.id, lastError);
      if (!opts.dryRun) await stopIfHopeless(ctx, runId, err);
    } finally {
      if (scope.sent > 0) await countLookups(ctx, runId, scope.sent, now);
    }
  }
  if (opts.dryRun) {
    const out = new Map(links);
    for (const f of found) out.set(f.sourceId, f.preludeUserId);
    return { links: out, failed };
  }
  if (found.length === 0) return { links, failed };
  // The table, not `found`, decides (HSETNX: an imported link wins): read back only what was found.
  const stored = await ctx.links.getMany(found.map((f) => f.sourceId));
  const out = new Map(links);
  for (const [id, usr] of stored) out.set(id, usr);
  return { links: out, failed };
}

async function countLookups(ctx: JobContext, runId: string, sent: number, now: number) {
  await ctx.runs.record(runId, {
    counters: [
      ['prelude', 'lookups', sent],
      ['prelude', 'requests', sent],
    ],
    now,
  });
}

/**
 * A lookup refused for a reason every request would meet (auth: key, app, session; a 429 asking to wait
 * beyond RATE_LIMIT_MAX_WAIT) stops Prelude for the run as a job's failure would (jobs/user-steps.ts):
 * the users' jobs then fail at the gate without a request, into the dead letters for `retry-failed`.
 */
async function stopIfHopeless(ctx: JobContext, runId: string, err: unknown): Promise<void> {
  if (!isSyncError(err)) return;
  const maxMs = ctx.settings.rateLimitMaxWaitMs;
  const askedMs = err.retryAfterMs ?? ctx.settings.defaultRetryAfterMs;
  let reason: string | undefined;
  if (err.errorClass === 'auth') reason = `${err.code} ${err.status ?? ''} ${err.message}`.trim();
  else if (err.errorClass === 'rate_limited' && askedMs > maxMs)
    reason = `${RATE_LIMITED_STOP}prelude asked to wait ${formatWait(askedMs)} (HTTP 429 Retry-After), more than RATE_LIMIT_MAX_WAIT (${formatWait(maxMs)})`;
  if (reason && (await ctx.runs.stopTarget(runId, 'prelude', reason)))
    ctx.logger.error({ runId, target: 'prelude' }, `prelude stopped for run ${runId}: ${reason}`);
}

function errorOf(err: unknown): Record<string, unknown> & { message: string } {
  return isSyncError(err)
    ? {
        code: err.code,
        errorClass: err.errorClass,
        message: err.message,
        ...(err.status ? { status: err.status } : {}),
      }
    : { message: err instanceof Error ? err.message : String(err) };
}

/** Whether a Prelude user without a link gets no job (unlinked) rather than a PATCH. */
export function needsLink(ctx: JobContext): boolean {
  const linker = ctx.targets.prelude?.linker;
  return linker !== undefined && linker.linkBy !== 'template';
}

/**
 * With links required: `linked`; `failed` (the lookup failed: the job looks the user up again);
 * `create` (not found, PRELUDE_CREATE_USERS=true and an email to log in with: the job creates it);
 * `unlinked` (not found, nothing to create: no PATCH, remembered for UNLINKED_RECHECK).
 */
export function linkDecision(
  user: SourceUser,
  links: Map<string, string>,
  failed: Map<string, unknown>,
  connector: TargetConnector,
): 'linked' | 'failed' | 'unlinked' | 'create' {
  if (links.has(user.id)) return 'linked';
  if (failed.has(user.id)) return 'failed';
  // Prelude requires an identifier: a user without an email cannot be created (lookup.ts `create`).
  return connector.linker?.createUsers && lookupEmail(user) !== undefined ? 'create' : 'unlinked';
}

/**
 * The scan's own item for a user who gets no job: `unlinked` (why: no Prelude user found, so `report`
 * and `history` say it), and in a dry run (no jobs) `failed` with the lookup's error. Undefined when
 * the user gets a job.
 */
export function heldItem(
  decision: ReturnType<typeof linkDecision> | undefined,
  userId: string,
  failed: Map<string, Record<string, unknown>>,
  connector: TargetConnector,
  dryRun: boolean,
  now: number,
): RunItem | undefined {
  const linkBy = connector.linker?.linkBy;
  const base = { userId, target: 'prelude' as const, requests: [], at: now, ...(dryRun ? { dryRun } : {}) };
  if (decision === 'unlinked') {
    const reason = `no Prelude user found (PRELUDE_LINK_BY=${linkBy}): no request; looked up again after UNLINKED_RECHECK or when the user changes`;
    return { ...base, outcome: 'unlinked', reason, attempts: 0 };
  }
  if (decision === 'failed' && dryRun)
    return { ...base, outcome: 'failed', attempts: 1, lastError: failed.get(userId)! };
  return undefined;
}

/** What a Prelude sync job needs to know of the scan's lookup: it failed; the id a dry run found. */
export function jobLinkHints(
  decision: ReturnType<typeof linkDecision> | undefined,
  linkedId: string | undefined,
  dryRun: boolean,
): { lookup?: true; link?: string } {
  return {
    ...(decision === 'failed' ? { lookup: true } : {}),
    ...(dryRun && linkedId ? { link: linkedId } : {}),
  };
}

/**
 * The Prelude id a sync job writes to when the link table has none: with `lookup` (the scan's
 * batch_lookup for this user failed) the job looks the user up itself (one request; an error is the
 * job's: retried, 429 waited, auth stops the target, and in the end a dead letter `retry-failed`
 * re-drives); with PRELUDE_CREATE_USERS=true a user still not found is created. A dry run looks up
 * (a read) but stores and creates nothing.
 */
export async function resolveLink(
  ctx: JobContext,
  linker: TargetLinker,
  user: SourceUser,
  next: FieldMap,
  opts: { attempt: number; lookup: boolean; dryRun: boolean; runId: string; scope?: RequestScope },
): Promise<{ created: boolean; linkedId?: string; requests: RequestRecord[] }> {
  const requests: RequestRecord[] = [];
  if (opts.lookup && linker.looksUp) {
    const result = await linker.lookup([user], opts.scope);
    requests.push(...result.requests);
    await ctx.runs.record(opts.runId, { counters: [['prelude', 'lookups', result.lookups]] });
    const hit = result.found[0];
    if (hit && !opts.dryRun) await ctx.links?.addFound([hit]);
    if (hit) {
      const linkedId = (opts.dryRun ? undefined : await ctx.links?.get(user.id)) ?? hit.preludeUserId;
      return { created: false, linkedId, requests };
    }
  }
  if (opts.dryRun || !linker.createUsers) return { created: false, requests };
  const made = await createLink(ctx, linker, user, next, opts.attempt, opts.runId, opts.scope);
  return { ...made, requests: [...requests, ...made.requests] };
}

/**
 * PRELUDE_CREATE_USERS=true, a user the scan's lookup did not find: `POST …/users` (email identifier,
 * external_id, the mapped profile), and its `usr_` id becomes the link (`create`). A retried job looks
 * the user up first (by external_id, which the create set): a create whose answer was lost to a crash
 * is found, never made twice. `created`: the profile went with the create, no PATCH follows.
 */
export async function createLink(
  ctx: JobContext,
  linker: TargetLinker,
  user: SourceUser,
  next: FieldMap,
  attempt: number,
  runId: string,
  scope?: RequestScope,
): Promise<{ created: boolean; linkedId?: string; requests: RequestRecord[] }> {
  if (attempt > 1 && linker.looksUp) {
    const again = await linker.lookup([user], scope);
    const hit = again.found[0];
    if (hit) {
      await ctx.links?.addFound([hit]);
      return { created: false, linkedId: (await ctx.links?.get(user.id)) ?? hit.preludeUserId, requests: [] };
    }
  }
  const made = await linker.create(user, next, scope);
  if (made.preludeUserId === undefined) return { created: false, requests: made.requests };
  await ctx.links?.addFound([{ sourceId: user.id, preludeUserId: made.preludeUserId, how: 'create' }]);
  await ctx.runs.record(runId, { counters: [['prelude', 'creates', 1]] });
  return { created: true, linkedId: made.preludeUserId, requests: made.requests };
}
