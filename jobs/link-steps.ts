import type { TargetConnector, TargetLinker } from '../src/connectors/types.js';
import { isSyncError, RejectedRecordError } from '../src/core/errors.js';
import { hashFields } from '../src/core/hashing.js';
import type { FieldMap, RequestRecord, SourceUser } from '../src/core/types.js';
import type { JobContext } from '../src/queue/context.js';
import type { RunItem, RunOptions } from '../src/store/run-record.js';
import { unlinkedIsFresh } from '../src/store/state-store.js';

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
  /** Users whose lookup failed (Prelude down): no job for them this run, counted `failed`. */
  failed: Map<string, Record<string, unknown>>;
}

export async function linkChunk(
  ctx: JobContext,
  runId: string,
  opts: RunOptions,
  users: readonly SourceUser[],
  links: Map<string, string>,
  now: number,
): Promise<ChunkLinks> {
  const linker = ctx.targets.prelude?.linker;
  const failed = new Map<string, Record<string, unknown>>();
  if (!linker?.looksUp || !ctx.links) return { links, failed };
  const unlinkedIds = users.filter((u) => !links.has(u.id)).map((u) => u.id);
  if (unlinkedIds.length === 0) return { links, failed };
  const states = await ctx.state.getMany('prelude', unlinkedIds);
  const markers = await ctx.state.getUnlinkedMany('prelude', unlinkedIds);
  const byId = new Map(users.map((u) => [u.id, u]));
  const candidates: SourceUser[] = [];
  unlinkedIds.forEach((id, i) => {
    const user = byId.get(id)!;
    let hash: string;
    try {
      hash = hashFields(ctx.targets.prelude!.map(user));
    } catch (err) {
      if (err instanceof RejectedRecordError) return; // rejected by the scan, nothing to look up
      throw err;
    }
    // unchanged (nothing to write) or remembered unlinked: no lookup needed, unless --full
    const skip =
      states[i]?.hash === hash ||
      unlinkedIsFresh(markers[i] ?? null, hash, ctx.settings.unlinkedRecheckMs, now);
    if (opts.full || !skip) candidates.push(user);
  });
  if (candidates.length === 0) return { links, failed };
  try {
    const result = await linker.lookup(candidates);
    if (result.lookups > 0) {
      await ctx.runs.record(runId, {
        counters: [
          ['prelude', 'lookups', result.lookups],
          ['prelude', 'requests', result.requests.length],
        ],
        now,
      });
    }
    if (opts.dryRun) {
      const out = new Map(links);
      for (const f of result.found) out.set(f.sourceId, f.preludeUserId);
      return { links: out, failed };
    }
    if (result.found.length) await ctx.links.addFound(result.found, now);
  } catch (err) {
    // auth (key, app, session): the PATCHes would fail the same way; everything else: these users wait
    // for the next run. Either way nothing is written for them in Prelude and nothing is marked unlinked.
    const lastError = isSyncError(err)
      ? {
          code: err.code,
          errorClass: err.errorClass,
          message: err.message,
          ...(err.status ? { status: err.status } : {}),
        }
      : { message: err instanceof Error ? err.message : String(err) };
    ctx.logger.warn(
      { runId, target: 'prelude', users: candidates.length, err: lastError.message },
      'prelude: batch_lookup failed; these users are not written to Prelude in this run',
    );
    for (const u of candidates) failed.set(u.id, lastError);
    return { links, failed };
  }
  return { links: await ctx.links.getMany(users.map((u) => u.id)), failed };
}

/** Whether a Prelude user without a link gets no job (unlinked) rather than a PATCH. */
export function needsLink(ctx: JobContext): boolean {
  const linker = ctx.targets.prelude?.linker;
  return linker !== undefined && linker.linkBy !== 'template';
}

/**
 * With links required: `linked`; `failed` (the lookup failed); `unlinked` (not found: no PATCH,
 * remembered for UNLINKED_RECHECK); `create` (not found, PRELUDE_CREATE_USERS=true: the job creates it).
 */
export function linkDecision(
  userId: string,
  links: Map<string, string>,
  failed: Map<string, unknown>,
  connector: TargetConnector,
): 'linked' | 'failed' | 'unlinked' | 'create' {
  if (links.has(userId)) return 'linked';
  if (failed.has(userId)) return 'failed';
  return connector.linker?.createUsers ? 'create' : 'unlinked';
}

/** A `failed` item for a user whose lookup failed. */
export function lookupFailedItem(userId: string, lastError: Record<string, unknown>, now: number): RunItem {
  return { userId, target: 'prelude', outcome: 'failed', attempts: 1, requests: [], lastError, at: now };
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
): Promise<{ created: boolean; linkedId?: string; requests: RequestRecord[] }> {
  if (attempt > 1 && linker.looksUp) {
    const again = await linker.lookup([user]);
    const hit = again.found[0];
    if (hit) {
      await ctx.links?.addFound([hit]);
      return { created: false, linkedId: (await ctx.links?.get(user.id)) ?? hit.preludeUserId, requests: [] };
    }
  }
  const made = await linker.create(user, next);
  if (made.preludeUserId === undefined) return { created: false, requests: made.requests };
  await ctx.links?.addFound([{ sourceId: user.id, preludeUserId: made.preludeUserId, how: 'create' }]);
  return { created: true, linkedId: made.preludeUserId, requests: made.requests };
}
