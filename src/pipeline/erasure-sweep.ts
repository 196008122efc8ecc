import type { Redis } from 'ioredis';
import { userKey } from '../core/hashing.js';
import { TARGET_IDS, type TargetId } from '../core/targets.js';
import { scanKeys } from '../store/connection.js';
import { tombstonesKey } from '../store/deletions.js';
import { bumpIn } from '../store/mutations.js';
import type { RedisLayout } from '../store/redis-layout.js';
import type { ErasureDeps } from './erasure.js';

/**
 * `forget`'s key sweep (issue 5): finds a user in every key of the prefix (ids, userKeys, emails, as
 * whole tokens) and erases or scrubs what holds them, BullMQ's job hashes included. The orchestration
 * (targets, tombstone, report) is src/pipeline/erasure.ts.
 */

/** Whether a string (a key, field, member, element or value) holds this user. */
export type Matcher = (s: string) => boolean;

const ID_CHAR = /[A-Za-z0-9._~-]/;

/**
 * True when `s` contains `token` as a whole id: `user-1` does not match inside `user-10`. The id may
 * stand alone, quoted in JSON, as a path or query segment, or percent-encoded after `%3A` (an
 * identifier query). A number after `":` is a JSON number (`"attempts":42`), never a user id, so a
 * numeric id does not match every counter that happens to hold the same number.
 */
export function containsToken(s: string, token: string): boolean {
  if (token === '') return false;
  for (let i = s.indexOf(token); i !== -1; i = s.indexOf(token, i + 1)) {
    const before = s[i - 1];
    const after = s[i + token.length];
    const startOk =
      before === undefined ||
      /%[0-9A-Fa-f]{2}$/.test(s.slice(Math.max(0, i - 3), i)) ||
      (before === ':' ? s[i - 2] !== '"' : !ID_CHAR.test(before) && !'[,'.includes(before));
    const endOk = after === undefined || !ID_CHAR.test(after);
    if (startOk && endOk) return true;
  }
  return false;
}

export function userMatcher(userId: string, key: string, emails: string[]): Matcher {
  const encoded = encodeURIComponent(userId);
  const numeric = /^\d+$/.test(userId);
  return (s: string) => {
    // A value that is only digits is a counter or a BullMQ id, not this user (sets of ids are
    // handled by exact member in `sweep`).
    if (numeric && s === userId) return false;
    if (containsToken(s, userId) || (encoded !== userId && containsToken(s, encoded))) return true;
    if (s.includes(`-${key}`) || s.endsWith(`/${key}`) || s.includes(`:${key}`)) return true;
    if (emails.length) {
      const lower = s.toLowerCase();
      if (emails.some((e) => containsEmail(lower, e))) return true;
    }
    return false;
  };
}

/** Characters that continue an email's local part leftwards (`joann@`, `x+ann@`, `jo.ann@`). */
const LOCAL_CHAR = /[A-Za-z0-9.!#$%&'*+^_`{|}~-]/;
/** Characters that continue an email's domain rightwards (`example.com.au`, `example.community`). */
const DOMAIN_CHAR = /[A-Za-z0-9-]/;

/**
 * True when `s` (lowercased) holds `email` as a whole address (issue 8.7): `ann@example.com` matches
 * `"ann@example.com"` in JSON, a set member, `email=ann@example.com` or `:ann@example.com` in an
 * identifier, but not `joann@example.com`, `jo.ann@example.com`, `x+ann@example.com` or
 * `ann@example.com.au`. A preceding percent-escape (`%3Aann@...`) is a boundary.
 */
export function containsEmail(s: string, email: string): boolean {
  if (email === '') return false;
  for (let i = s.indexOf(email); i !== -1; i = s.indexOf(email, i + 1)) {
    const before = s[i - 1];
    const end = i + email.length;
    const after = s[end];
    const startOk =
      before === undefined ||
      /%[0-9A-Fa-f]{2}$/.test(s.slice(Math.max(0, i - 3), i)) ||
      !LOCAL_CHAR.test(before);
    const endOk =
      after === undefined || (after === '.' ? !DOMAIN_CHAR.test(s[end + 1] ?? '') : !DOMAIN_CHAR.test(after));
    if (startOk && endOk) return true;
  }
  return false;
}

/** BullMQ job ids of this user in one queue: every job id ends with `-<userKey>` (jobs/sync.ts, jobs/remove.ts). */
export async function jobIdsOf(
  redis: Redis,
  layout: RedisLayout,
  queue: string,
  key: string,
): Promise<string[]> {
  const base = layout.bullQueueBase(queue);
  const ids = new Set<string>();
  for (const k of await scanKeys(redis, `${base}*-${key}*`)) {
    const rest = k.slice(base.length);
    const end = rest.indexOf(`-${key}`) + key.length + 1;
    ids.add(rest.slice(0, end));
  }
  return [...ids];
}

interface SweepResult {
  erased: Record<string, number>;
  remaining: string[];
}

/**
 * Walks every key of the prefix and erases what holds the user (or, with `dryRun`, only lists it).
 * The big per-user hashes (state, unlinked, links) are looked up by field instead of read whole, and
 * other users' BullMQ job hashes are skipped by their id; everything else is read in batches.
 */
export async function sweep(
  deps: ErasureDeps,
  match: Matcher,
  opts: {
    dryRun: boolean;
    /** Targets that failed: their state stays for the re-run and is reported as remaining. */
    keepTargets: TargetId[];
    /** Targets not asked for (`--targets`): their state and link are left alone, silently. */
    skipTargets: TargetId[];
    userId: string;
    activeJobs?: string[];
  },
): Promise<SweepResult> {
  const { redis, layout } = deps;
  const erased: Record<string, number> = {};
  const remaining: string[] = [];
  const bump = (k: string, n = 1) => {
    if (n) erased[k] = (erased[k] ?? 0) + n;
  };
  const found = (k: string) => {
    if (!remaining.includes(k)) remaining.push(k);
  };
  const base = layout.keyBase();
  const tomb = tombstonesKey(layout);
  const perUser = new Map<string, { kind: string; target?: TargetId }>();
  for (const t of TARGET_IDS) {
    perUser.set(layout.state(t), { kind: 'state', target: t });
    perUser.set(layout.unlinked(t), { kind: 'unlinked', target: t });
  }
  perUser.set(layout.links(), { kind: 'links', target: 'prelude' });
  perUser.set(layout.linksHow(), { kind: 'linkInfo', target: 'prelude' }); // issue 10: how it was found
  const otherJob = /:(?:sync|remove)-[a-z]+-\d{8}T\d{6}Z-[0-9a-f]{4}-([0-9a-f]{16})(?::[a-z]+)?$/;

  // On a Cluster, SCAN goes to every master (scanKeys): a plain `redis.scan` would ask one random node.
  const keys = await scanKeys(redis, layout.allKeys());

  // Issue 11.4: the payload key lists every state value names (no user in them): never touched, even
  // for a user whose id is a key name such as `email`.
  const keyLists = new Set(TARGET_IDS.map((t) => layout.stateKeys(t)));
  // Issue 11: the counters of removed states (no user in them either).
  for (const t of TARGET_IDS) keyLists.add(layout.stateRemovals(t));
  // Issue 11: the scan's mutation counters and block conclusions (no user id in them either).
  keyLists.add(layout.mutations());
  keyLists.add(layout.scanBlocks());
  for (const k of keys) {
    if (k === tomb || keyLists.has(k)) continue;
    const special = perUser.get(k);
    if (special) {
      const fields = await userFields(redis, k, opts.userId);
      if (fields.length === 0) continue;
      if (special.target && opts.skipTargets.includes(special.target)) continue;
      if (special.target && opts.keepTargets.includes(special.target)) {
        found(k);
        continue;
      }
      if (opts.dryRun) found(k);
      else if (special.kind === 'state') {
        // Counted before it is removed (deletion detection's fast path, src/store/deletions.ts).
        const m = redis
          .multi()
          .incr(layout.stateRemovals(special.target!))
          .hdel(k, ...fields);
        const [, [, n]] = (await bumpIn(m, layout.mutations(), [opts.userId]).exec()) as [
          unknown,
          [unknown, number],
        ];
        bump(special.kind, n);
      } else {
        const m = redis.multi().hdel(k, ...fields);
        const [[, n]] = (await bumpIn(m, layout.mutations(), [opts.userId]).exec()) as [[unknown, number]];
        bump(special.kind, n);
      }
      continue;
    }
    if (/:run:[^:]+:users:[0-9a-f]{2}$/.test(k)) {
      // Issue 11.4: a run's history index (user key -> item indexes): the user's field, exactly.
      const uk = userKey(opts.userId);
      if ((await redis.hexists(k, uk)) === 1) {
        if (opts.dryRun) found(k);
        else bump('history', await redis.hdel(k, uk));
      }
      continue;
    }
    if (/:run:[^:]+:(?:seen|gone:[a-z]+|orphans:[a-z]+)$/.test(k) || /:orphans:[a-z]+$/.test(k)) {
      // Sets of source ids (issue 5's seen/gone): the member is the id, exactly.
      if ((await redis.sismember(k, opts.userId)) === 1) {
        if (opts.dryRun) found(k);
        else bump('setEntries', await redis.srem(k, opts.userId));
      }
      continue;
    }
    const job = otherJob.exec(k);
    if (job && !match(k)) continue; // another user's job: its data holds that user only
    if (opts.activeJobs?.some((j) => k.startsWith(`${base}${j.replace('/', ':')}`))) {
      found(k); // a running job of this user: BullMQ owns it until it ends (forget again then)
      continue;
    }
    const type = await redis.type(k);
    if (match(k.slice(base.length))) {
      // The key itself names the user (history:<userKey>, a job's hash or logs): all of it goes.
      if (opts.dryRun) found(k);
      else bump(type === 'zset' && k.includes(':history:') ? 'history' : 'keys', await redis.del(k));
      continue;
    }
    const n = await eraseInKey(redis, k, type, match, opts.dryRun);
    if (n > 0) {
      if (opts.dryRun) found(k);
      else bump(kindOf(k, type), n);
    }
  }
  return { erased, remaining };
}

function kindOf(key: string, type: string): string {
  if (key.endsWith(':items')) return 'runItems';
  if (key.endsWith(':plan')) return 'planLines';
  if (key.endsWith(':tries')) return 'retryNotes';
  if (key.endsWith(':events')) return 'queueEvents';
  return `${type}Entries`;
}

/**
 * The field of a per-user hash (state, unlinked, links) that holds the user: its field is the source
 * id and no other field can hold this user, so one HEXISTS replaces reading millions of entries.
 */
async function userFields(redis: Redis, key: string, userId: string): Promise<string[]> {
  return (await redis.hexists(key, userId)) ? [userId] : [];
}

/** Erases (or counts) the members of one key that hold the user. Returns how many. */
async function eraseInKey(
  redis: Redis,
  key: string,
  type: string,
  match: Matcher,
  dryRun: boolean,
): Promise<number> {
  let n = 0;
  switch (type) {
    case 'string': {
      const v = await redis.get(key);
      if (v !== null && match(v)) {
        n = 1;
        if (!dryRun) await redis.del(key);
      }
      return n;
    }
    case 'hash': {
      let cursor = '0';
      do {
        const [next, flat] = await redis.hscan(key, cursor, 'COUNT', 1000);
        cursor = next;
        for (let i = 0; i + 1 < flat.length; i += 2) {
          const field = flat[i]!;
          const value = flat[i + 1]!;
          if (!match(field) && !match(value)) continue;
          n++;
          if (dryRun) continue;
          // A JSON value keeps its shape with the user's strings replaced (a run's options listing
          // `--users`); a field named after the user, or a plain value, goes.
          const scrubbed = match(field) ? null : scrubJson(value, match);
          if (scrubbed === null) await redis.hdel(key, field);
          else await redis.hset(key, field, scrubbed);
        }
      } while (cursor !== '0');
      return n;
    }
    case 'set': {
      let cursor = '0';
      do {
        const [next, members] = await redis.sscan(key, cursor, 'COUNT', 1000);
        cursor = next;
        const hit = members.filter(match);
        n += hit.length;
        if (hit.length && !dryRun) await redis.srem(key, ...hit);
      } while (cursor !== '0');
      return n;
    }
    case 'zset': {
      let cursor = '0';
      do {
        const [next, flat] = await redis.zscan(key, cursor, 'COUNT', 1000);
        cursor = next;
        const hit = flat.filter((_, i) => i % 2 === 0).filter(match);
        n += hit.length;
        if (hit.length && !dryRun) await redis.zrem(key, ...hit);
      } while (cursor !== '0');
      return n;
    }
    case 'list': {
      const len = await redis.llen(key);
      for (let start = 0; start < len; start += 1000) {
        const rows = await redis.lrange(key, start, start + 999);
        for (const [i, row] of rows.entries()) {
          if (!match(row)) continue;
          n++;
          if (!dryRun) await redis.lset(key, start + i, erasedElement(row));
        }
      }
      return n;
    }
    case 'stream': {
      let from = '-';
      for (;;) {
        const entries = (await redis.xrange(key, from, '+', 'COUNT', 1000)) as [string, string[]][];
        const hit = entries.filter(([, fields]) => fields.some(match)).map(([id]) => id);
        n += hit.length;
        if (hit.length && !dryRun) await redis.xdel(key, ...hit);
        if (entries.length < 1000) break;
        from = `(${entries[entries.length - 1]![0]}`;
      }
      return n;
    }
    default:
      return 0;
  }
}

/** A JSON text with every string that holds the user replaced by `(erased)`; null when not JSON. */
function scrubJson(text: string, match: Matcher): string | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (v === null || typeof v !== 'object') return null;
  const walk = (x: unknown): unknown => {
    if (typeof x === 'string') return match(x) ? ERASED_USER : x;
    if (Array.isArray(x)) return x.map(walk);
    if (x && typeof x === 'object')
      return Object.fromEntries(
        Object.entries(x)
          .filter(([k]) => !match(k))
          .map(([k, y]) => [k, walk(y)]),
      );
    return x;
  };
  return JSON.stringify(walk(v));
}

/**
 * The replacement of a list element that held the user: run items and plan lines keep their place
 * (other users' history points at items by index) and what is not personal (target, outcome, time).
 */
function erasedElement(row: string): string {
  try {
    const v = JSON.parse(row) as Record<string, unknown>;
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      const kept: Record<string, unknown> = { userId: ERASED_USER, erased: true };
      for (const k of ['target', 'outcome', 'at', 'attempts', 'dryRun'] as const) if (k in v) kept[k] = v[k];
      if ('outcome' in v) kept.requests = [];
      return JSON.stringify(kept);
    }
  } catch {
    // not JSON: replaced by the marker alone
  }
  return JSON.stringify({ erased: true });
}

/** An erased run item: what happened stays countable, whose data it was does not. */
export const ERASED_USER = '(erased)';
