import type { Redis } from 'ioredis';
import type { TargetId } from '../core/targets.js';
import type { FieldMap } from '../core/types.js';
import { bumpIn } from './mutations.js';
import type { RedisLayout } from './redis-layout.js';
import type { StateStore } from './state-store.js';

/**
 * Users who left the source (issue 5), the Redis half: the pieces that need no job machinery. The scan
 * adds every id it reads to a per-run set; after a complete scan, each target's known users (the state
 * hash) are checked against that set in batches (HSCAN + SMISMEMBER), so neither side is ever held in
 * memory. The policy half (settings, brake, alert, plan lines) is src/pipeline/deletions.ts.
 *
 * | key                             | type | what                                                          |
 * |---------------------------------|------|---------------------------------------------------------------|
 * | `{p}:run:<runId>:seen`          | set  | every source id the run's scan read; expires 24 h, deleted after detection |
 * | `{p}:run:<runId>:gone:<target>` | set  | known users the complete scan did not return (the held removals) |
 * | `{p}:orphans:<target>`          | set  | users an `ignore` target found orphaned last time (items only for new ones) |
 * | `{p}:tombstones`                | hash | sha256(userId) -> what `forget` did (no PII)                  |
 *
 * The key names themselves come from src/store/redis-layout.ts.
 */

/** What a target does with a user who left the source. `delete` is Sunshine's, `clear` Zephr's and Prelude's. */
export type DeletePolicy = 'ignore' | 'delete' | 'clear';

/** The policy and brake in force for a run, recorded in its options when it starts. */
export interface DeletionSettings {
  /** Per target; absent means `ignore`. */
  policy: Partial<Record<TargetId, DeletePolicy>>;
  /** Largest share of a target's known users one run may remove (`MAX_DELETE_RATE`). @defaultValue 0.05 */
  maxDeleteRate: number;
  /** Largest number of users one run may remove from one target (`MAX_DELETES`). @defaultValue 1000 */
  maxDeletes: number;
}

/** Per target: what detection found. Stored as JSON in the run hash (`deletions`): counts only, no ids. */
export interface TargetDeletions {
  policy: DeletePolicy;
  /** Users profile-sync held a written state for when detection ran. */
  known: number;
  /** Of those, not returned by the complete scan. */
  gone: number;
}

export interface DeletionSummary {
  targets: Partial<Record<TargetId, TargetDeletions>>;
  /** Why the safety brake held the run's removals (also the `deletionsHeld` field of the run hash). */
  held?: string;
  /** `backfill --confirm-deletes`: when, how many re-driven, how many came back to the source meanwhile. */
  confirmed?: { at: number; removals: number; returned: number };
  /**
   * Prelude's unlinked markers of users who left, dropped (`dropUnlinkedOfGone`); `compared` false
   * when every marker was known to be a seen user's without comparing them (`markersAllSeen`).
   */
  unlinkedMarkers?: { dropped: number; compared: boolean };
}

export const SEEN_TTL_MS = 24 * 3600_000;

export function seenKey(layout: RedisLayout, runId: string): string {
  return layout.runSeen(runId);
}

export function goneKey(layout: RedisLayout, runId: string, target: TargetId): string {
  return layout.runGone(runId, target);
}

/** Users an `ignore` target found orphaned in its last complete run (items are recorded for new ones only). */
export function orphansKey(layout: RedisLayout, target: TargetId): string {
  return layout.orphans(target);
}

export function tombstonesKey(layout: RedisLayout): string {
  return layout.tombstones();
}

/**
 * Issue 11: deletion detection without reading every state (the fast path of `findGone`). The scan
 * counts, per target, the distinct users it adds to the seen set that had a state when it read them
 * (`seen:<t>` in `{p}:run:<id>:seen:counts`), and `startSeenCounts` notes each target's removal
 * counter (`{p}:state:<t>:removals`, bumped by every removal of a state field: the remove job,
 * `forget`) before the scan's first read. When no state was removed since and the target holds exactly
 * as many states as were counted, every state belongs to a counted, seen user: nobody left, and the
 * HSCAN of the state hash is skipped. Otherwise (a new user written, a removal, a user not read)
 * `findGone` compares every state, as before.
 */
export async function startSeenCounts(
  redis: Redis,
  layout: RedisLayout,
  runId: string,
  targets: readonly TargetId[],
): Promise<void> {
  if (targets.length === 0) return;
  // HSETNX: a retried scan job keeps the first attempt's start (its counts are kept too).
  await redis.eval(
    START_COUNTS_LUA,
    2 + targets.length,
    layout.runSeenCounts(runId),
    layout.mutations(),
    ...targets.map((t) => layout.stateRemovals(t)),
    String(SEEN_TTL_MS),
    ...targets,
  );
}

/**
 * KEYS: counts hash, mutation counters, each target's removal counter. ARGV: ttl, the targets. Also
 * notes a digest of the mutation counters (`dropUnlinkedOfGone`'s fast path; '' when there are none).
 */
const START_COUNTS_LUA = `
for i = 3, #KEYS do
  redis.call('HSETNX', KEYS[1], 'removals:' .. ARGV[i - 1], redis.call('GET', KEYS[i]) or '0')
end
local m = redis.call('GET', KEYS[2])
redis.call('HSETNX', KEYS[1], 'mutations', m and redis.sha1hex(m) or '')
redis.call('PEXPIRE', KEYS[1], ARGV[1])
`;

/**
 * What `recordSeen` counts, beside the targets, for the seen users that had a Prelude unlinked marker
 * when the scan read them (`seen:unlinked:prelude`): `dropUnlinkedOfGone`'s fast path.
 */
export const MARKERS_SEEN = 'unlinked:prelude';

/**
 * Adds ids the scan read to the run's seen set (idempotent: a restarted scan re-adds its pages).
 * `stated` (issue 11), per target: the ids of this batch whose state the scan read (after
 * `startSeenCounts`), as a set or as a flag string answering `ids` ('1': had a state); those not yet
 * in the set are counted, in the same call, each once. `markers` (with `stated`): a flag string
 * answering `ids` ('1': had a Prelude unlinked marker), counted the same way (`markersAllSeen`).
 */
export async function recordSeen(
  redis: Redis,
  layout: RedisLayout,
  runId: string,
  ids: string[],
  stated?: ReadonlyMap<TargetId, ReadonlySet<string> | string>,
  markers?: string,
): Promise<void> {
  if (ids.length === 0) return;
  const key = seenKey(layout, runId);
  if (stated?.size) {
    const counted = new Map<string, ReadonlySet<string> | string>(stated);
    if (markers !== undefined) counted.set(MARKERS_SEEN, markers);
    const targets = [...counted.keys()];
    const flags = targets.map((t) => {
      const has = counted.get(t)!;
      if (typeof has === 'string') {
        if (has.length !== ids.length)
          throw new Error(`recordSeen: ${has.length} flags for ${ids.length} ids`);
        return has;
      }
      return ids.map((id) => (has.has(id) ? '1' : '0')).join('');
    });
    // The ids grouped by which targets they had a state in (at most 2^targets groups): one SADD per
    // group, whose answer (how many were new) is what each of the group's targets counts.
    const groups = new Map<number, string[]>(); // bit t: had a state in targets[t]
    for (let i = 0; i < ids.length; i++) {
      let mask = 0;
      for (let t = 0; t < flags.length; t++) if (flags[t]!.charCodeAt(i) === 49) mask |= 1 << t;
      const g = groups.get(mask);
      if (g) g.push(ids[i]!);
      else groups.set(mask, [ids[i]!]);
    }
    // A repeated id carries no flag (the scan flags only the first, fresh one): the group without a
    // flag goes last, so the flagged occurrence is the one that adds the id and counts.
    const order = [...groups.keys()].sort((a, b) => Number(a === 0) - Number(b === 0));
    const args: string[] = [String(SEEN_TTL_MS), String(targets.length), ...targets];
    for (const mask of order) {
      const members = groups.get(mask)!;
      const pattern = targets.map((_, t) => ((mask >> t) & 1 ? '1' : '0')).join('');
      // One argument a group, the ids one a line (no id holds a control character, record.ts).
      args.push(pattern, members.join('\n'));
    }
    await redis.eval(RECORD_SEEN_LUA, 2, key, layout.runSeenCounts(runId), ...args);
    return;
  }
  await redis
    .multi()
    .sadd(key, ...ids)
    .pexpire(key, SEEN_TTL_MS)
    .exec();
}

/**
 * KEYS: seen set, counts hash. ARGV: ttl, n, n target names, then groups: a pattern (one char per
 * target, '1': had a state) and the group's ids, one a line (SADD in slices of 4,000: Lua's unpack
 * limit). An id already a member (or earlier in the call) adds nothing, so it counts nothing.
 */
const RECORD_SEEN_LUA = `
local n = tonumber(ARGV[2])
local counts = {}
for k = 1, n do counts[k] = 0 end
for p = 3 + n, #ARGV, 2 do
  local pattern = ARGV[p]
  local ids = {}
  for id in string.gmatch(ARGV[p + 1], '[^\\n]+') do ids[#ids + 1] = id end
  local added = 0
  for i = 1, #ids, 4000 do
    added = added + redis.call('SADD', KEYS[1], unpack(ids, i, math.min(i + 3999, #ids)))
  end
  for t = 1, n do
    if string.byte(pattern, t) == 49 then counts[t] = counts[t] + added end
  end
end
for t = 1, n do
  if counts[t] > 0 then redis.call('HINCRBY', KEYS[2], 'seen:' .. ARGV[2 + t], counts[t]) end
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
`;

/**
 * Fills the run's gone set for one target: users with a state written before the run started that
 * the seen set lacks. A state written after the start belongs to a user a concurrent run (sync-user)
 * just created; the scan may have paged past that user before it appeared, so it is never "gone".
 * Returns the counts, and whether the states were compared (false: the fast path, `startSeenCounts`).
 * Memory: one HSCAN batch at a time.
 */
export async function findGone(
  redis: Redis,
  layout: RedisLayout,
  runId: string,
  target: TargetId,
  startedAt: number,
  keepMs: number,
  batch = 5000,
): Promise<{ known: number; gone: number; compared: boolean }> {
  const seen = seenKey(layout, runId);
  const gone = goneKey(layout, runId, target);
  const stateKey = layout.state(target);
  await redis.del(gone);
  const [[, known], [, counted], [, atStart], [, removals]] = (await redis
    .multi()
    .hlen(stateKey)
    .hget(layout.runSeenCounts(runId), `seen:${target}`)
    .hget(layout.runSeenCounts(runId), `removals:${target}`)
    .get(layout.stateRemovals(target))
    .exec()) as [unknown, unknown][] as [
    [unknown, number],
    [unknown, string | null],
    [unknown, string | null],
    [unknown, string | null],
  ];
  // Issue 11: every state is a counted user the scan read, and none was removed since it started.
  if (atStart !== null && (removals ?? '0') === atStart && Number(counted ?? 0) === known)
    return { known, gone: 0, compared: false };
  // Issue 11.4: one Lua call per batch compares inside Redis; only the cursor comes back (at a million
  // users, HSCAN + SMISMEMBER from here moved every value over the wire to read its time).
  let cursor = '0';
  do {
    cursor = String(
      await redis.eval(FIND_GONE_LUA, 3, stateKey, seen, gone, cursor, String(batch), String(startedAt)),
    );
  } while (cursor !== '0');
  await redis.pexpire(gone, keepMs);
  return { known, gone: await redis.scard(gone), compared: true };
}

/**
 * One HSCAN batch of a state hash: users not in the seen set whose state was written before the run
 * started go to the gone set. The write time is the value's prefix in base 36 (state-codec.ts), or `t`
 * of a v1 JSON value. One SMISMEMBER per 4,000 ids (Lua's unpack has a stack limit of ~8,000; one
 * SISMEMBER per id made the call overhead most of the time). KEYS: state hash, seen set, gone set.
 * ARGV: cursor, count, startedAt (ms).
 * Returns the next cursor.
 */
const FIND_GONE_LUA = `
local r = redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', tonumber(ARGV[2]))
local flat = r[2]
local startedAt = tonumber(ARGV[3])
local ids = {}
for i = 1, #flat, 2 do ids[#ids + 1] = flat[i] end
for s = 1, #ids, 4000 do
  local e = math.min(s + 3999, #ids)
  local member = redis.call('SMISMEMBER', KEYS[2], unpack(ids, s, e))
  for j = 1, #member do
    if member[j] == 0 then
      local v = flat[2 * (s + j - 1)]
      local t
      if string.sub(v, 1, 1) == '{' then t = cjson.decode(v).t
      else t = tonumber(string.sub(v, 1, string.find(v, ',', 1, true) - 1), 36) end
      if t < startedAt then redis.call('SADD', KEYS[3], ids[s + j - 1]) end
    end
  end
end
return r[1]
`;

/**
 * Drops the Prelude `user_not_found` markers of users the complete scan did not return: a marker only
 * saves a probe, and one for a user who left would never be read again. No request is involved.
 */
export async function dropUnlinkedOfGone(
  redis: Redis,
  layout: RedisLayout,
  runId: string,
  target: TargetId,
  batch = 5000,
): Promise<{ dropped: number; compared: boolean }> {
  const seen = seenKey(layout, runId);
  const key = layout.unlinked(target);
  if (target === 'prelude' && (await markersAllSeen(redis, layout, runId)))
    return { dropped: 0, compared: false };
  let dropped = 0;
  let cursor = '0';
  do {
    // Issue 11 (re-run): compared inside Redis, one call a batch; only the ids not seen come back
    // (at a million users, 150,000 markers and their values used to cross the wire every run).
    const [next, ...gone] = (await redis.eval(UNSEEN_FIELDS_LUA, 2, key, seen, cursor, String(batch))) as [
      string,
      ...string[],
    ];
    cursor = next;
    if (gone.length) {
      const m = redis.multi().hdel(key, ...gone);
      const [[, n]] = (await bumpIn(m, layout.mutations(), gone).exec()) as [[unknown, number]];
      dropped += n;
    }
  } while (cursor !== '0');
  return { dropped, compared: true };
}

/**
 * Issue 11 (re-run): whether every Prelude unlinked marker belongs to a user this scan read, without
 * comparing them. The scan counts the distinct seen users that had a marker when it read them
 * (`recordSeen`'s `markers`, as `seen:unlinked:prelude`); `startSeenCounts` noted a digest of the
 * mutation counters before the first read, and every write or removal of a marker bumps its user's
 * counter (src/store/mutations.ts). Counters unchanged since then: the markers now are the ones the
 * scan read. As many markers as counted: each is a counted, seen user's. Otherwise (a marker written
 * or dropped during the run, no counters at the start, a scan that did not count them) false, and
 * every marker is compared. Like the block conclusions, it misses a bucket changed exactly 65,536
 * times during the run.
 */
export async function markersAllSeen(redis: Redis, layout: RedisLayout, runId: string): Promise<boolean> {
  const r = await redis.eval(
    MARKERS_SEEN_LUA,
    3,
    layout.runSeenCounts(runId),
    layout.mutations(),
    layout.unlinked('prelude'),
    `seen:${MARKERS_SEEN}`,
  );
  return r === 1;
}

const MARKERS_SEEN_LUA = `
local at = redis.call('HGET', KEYS[1], 'mutations')
if not at or at == '' then return 0 end
local m = redis.call('GET', KEYS[2])
if not m or redis.sha1hex(m) ~= at then return 0 end
local counted = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if counted ~= redis.call('HLEN', KEYS[3]) then return 0 end
return 1
`;

/**
 * One HSCAN batch of a hash: its fields the set lacks. KEYS: hash, set. ARGV: cursor, count. Returns
 * {next cursor, field...}. SMISMEMBER in slices of 4,000 (Lua's unpack limit).
 */
const UNSEEN_FIELDS_LUA = `
local r = redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', tonumber(ARGV[2]))
local flat = r[2]
local ids = {}
for i = 1, #flat, 2 do ids[#ids + 1] = flat[i] end
local out = {r[1]}
for s = 1, #ids, 4000 do
  local e = math.min(s + 3999, #ids)
  local member = redis.call('SMISMEMBER', KEYS[2], unpack(ids, s, e))
  for j = 1, #member do
    if member[j] == 0 then out[#out + 1] = ids[s + j - 1] end
  end
end
return out
`;

/** Batches of a gone set (SSCAN): memory flat however many users left. */
export async function* goneBatches(
  redis: Redis,
  layout: RedisLayout,
  runId: string,
  target: TargetId,
  batch = 500,
): AsyncIterable<string[]> {
  let cursor = '0';
  const seen = new Set<string>();
  do {
    const [next, ids] = await redis.sscan(goneKey(layout, runId, target), cursor, 'COUNT', batch);
    cursor = next;
    // SSCAN may return an element twice; a removal job id collapses duplicates anyway, an item would not.
    const fresh = ids.filter((id) => !seen.has(id));
    for (const id of fresh) seen.add(id);
    if (fresh.length) yield fresh;
  } while (cursor !== '0');
}

/** Reads a run's deletion summary. */
export async function readDeletions(
  redis: Redis,
  layout: RedisLayout,
  runId: string,
): Promise<DeletionSummary | null> {
  const raw = await redis.hget(layout.run(runId), 'deletions');
  return raw ? (JSON.parse(raw) as DeletionSummary) : null;
}

export async function writeDeletions(
  redis: Redis,
  layout: RedisLayout,
  runId: string,
  summary: DeletionSummary,
  opts: { hold: boolean },
): Promise<void> {
  const fields: Record<string, string> = { deletions: JSON.stringify(summary) };
  const m = redis.multi().hset(layout.run(runId), fields);
  // `deletionsHeld` makes the run end `held` (run-lifecycle.ts); a dry run only reports the brake.
  if (opts.hold && summary.held) m.hset(layout.run(runId), 'deletionsHeld', summary.held);
  else m.hdel(layout.run(runId), 'deletionsHeld');
  await m.exec();
}

/** Last written payloads of a batch of users, for the run record. */
export async function lastWritten(
  state: StateStore,
  target: TargetId,
  ids: string[],
): Promise<(FieldMap | null)[]> {
  return (await state.getMany(target, ids)).map((s) => s?.fields ?? null);
}
