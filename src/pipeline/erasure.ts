import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { SourceConnector, TargetConnector } from '../connectors/types.js';
import { isSyncError } from '../core/errors.js';
import { sha256Hex, userKey } from '../core/hashing.js';
import { TARGET_IDS, type TargetId } from '../core/targets.js';
import type { FieldMap, RemoveResult } from '../core/types.js';
import type { Logger } from '../log.js';
import { tombstonesKey } from '../store/deletions.js';
import type { LinkStore } from '../store/links.js';
import type { RedisLayout } from '../store/redis-layout.js';
import type { StateStore } from '../store/state-store.js';
import { jobIdsOf, sweep, userMatcher } from './erasure-sweep.js';

export interface ErasureDeps {
  redis: Redis;
  layout: RedisLayout;
  state: StateStore;
  links?: LinkStore;
  /** Each enabled target's queue (`sync-<target>`). */
  queues: Partial<Record<TargetId, Queue>>;
  connectors: Partial<Record<TargetId, TargetConnector>>;
  source?: SourceConnector;
  logger: Logger;
}

export type TargetErasure =
  | { ok: true; action: RemoveResult['action']; requests: number }
  | { ok: false; error: string; skipped?: boolean };

/** What `forget` stores: no id, no PII. */
export interface Tombstone {
  /** sha256 (hex) of the user id. */
  userIdHash: string;
  at: number;
  /** Per target: the action taken, or `failed` (run forget again). */
  targets: Partial<Record<TargetId, RemoveResult['action'] | 'failed'>>;
  /** How many times forget ran for this id. */
  times: number;
}

export interface ForgetReport {
  userIdHash: string;
  /** A second forget found nothing left to do: no request sent, nothing in Redis. */
  noop: boolean;
  /** The previous tombstone, when there was one. */
  previous?: Tombstone;
  targets: Partial<Record<TargetId, TargetErasure>>;
  /** Redis: what was erased, by kind. */
  erased: Record<string, number>;
  /** Keys that still hold a trace (an active job, a target that failed keeps its state for the re-run). */
  remaining: string[];
  /** Targets not asked for (`--targets`) that still hold the user's state, left alone. */
  untouched?: TargetId[];
  /** The source still returns the user: the next sync would create them again. */
  stillInSource?: boolean;
  sourceError?: string;
  ok: boolean;
}

export async function forgetUser(
  deps: ErasureDeps,
  userId: string,
  targets: TargetId[],
  now = Date.now(),
): Promise<ForgetReport> {
  const { redis, layout } = deps;
  const hash = sha256Hex(userId);
  const key = userKey(userId);
  const previousRaw = await redis.hget(tombstonesKey(layout), hash);
  const previous = previousRaw ? (JSON.parse(previousRaw) as Tombstone) : undefined;

  // Needles: the id, and every email this user had as far as profile-sync knows (state, source).
  const states = new Map<TargetId, FieldMap | null>();
  for (const t of TARGET_IDS) states.set(t, (await deps.state.get(t, userId))?.fields ?? null);
  const emails = new Set<string>();
  for (const fields of states.values()) for (const v of Object.values(fields ?? {})) addEmail(emails, v);
  let stillInSource: boolean | undefined;
  let sourceError: string | undefined;
  if (deps.source) {
    try {
      const rec = await deps.source.getUser(userId);
      stillInSource = rec !== null;
      if (rec?.ok) addEmail(emails, rec.user.email);
    } catch (err) {
      sourceError = err instanceof Error ? err.message : String(err);
    }
  }
  const matcher = userMatcher(userId, key, [...emails]);

  // A previous forget that succeeded everywhere, and nothing written since: a no-op (no request).
  const others = TARGET_IDS.filter((t) => !targets.includes(t));
  const traces = await sweep(deps, matcher, { dryRun: true, keepTargets: [], skipTargets: others, userId });
  const doneBefore =
    previous !== undefined &&
    targets.every((t) => previous.targets[t] !== undefined && previous.targets[t] !== 'failed');
  if (doneBefore && traces.remaining.length === 0) {
    return {
      userIdHash: hash,
      noop: true,
      previous,
      targets: {},
      erased: {},
      remaining: [],
      ...(stillInSource !== undefined ? { stillInSource } : {}),
      ...(sourceError ? { sourceError } : {}),
      ok: true,
    };
  }

  // 1. Jobs first: nothing queued may write the user again after the targets forgot them.
  const erased: Record<string, number> = {};
  const bump = (k: string, n = 1) => {
    if (n) erased[k] = (erased[k] ?? 0) + n;
  };
  const activeJobs: string[] = [];
  for (const q of Object.values(deps.queues)) {
    if (!q) continue;
    for (const jobId of await jobIdsOf(redis, layout, q.name, key)) {
      const state = await q.getJobState(jobId);
      if (state === 'active') {
        activeJobs.push(`${q.name}/${jobId}`);
        continue;
      }
      if ((await q.remove(jobId)) === 1) bump('jobs');
    }
  }

  // 2. The targets.
  const results: Partial<Record<TargetId, TargetErasure>> = {};
  const linkedId = deps.links ? await deps.links.get(userId) : undefined;
  for (const t of targets) {
    const c = deps.connectors[t];
    if (!c) {
      results[t] = { ok: false, error: `target ${t} is not enabled`, skipped: true };
      continue;
    }
    if (activeJobs.some((j) => j.startsWith(`sync-${t}/`))) {
      results[t] = {
        ok: false,
        error: 'a job for this user is running in this target; run forget again when it ends',
      };
      continue;
    }
    try {
      const r = await c.remove({ id: userId }, states.get(t) ?? null, t === 'prelude' ? linkedId : undefined);
      results[t] = { ok: true, action: r.action, requests: r.requests.length };
    } catch (err) {
      const error = isSyncError(err)
        ? `${err.code} ${err.errorClass}${err.status ? ` ${err.status}` : ''}`
        : 'E_UNKNOWN';
      results[t] = { ok: false, error };
      deps.logger.error({ target: t, userIdHash: hash, error }, `forget: ${t} failed; run forget again`);
    }
  }

  // 3. Redis: everything, except what a failed target needs for the re-run (its state; the link).
  const keepTargets = targets.filter((t) => !results[t]?.ok);
  const swept = await sweep(deps, matcher, {
    dryRun: false,
    keepTargets,
    skipTargets: others,
    userId,
    activeJobs,
  });
  for (const [k, n] of Object.entries(swept.erased)) bump(k, n);

  const ok = targets.every((t) => results[t]?.ok);
  const untouched = others.filter((t) => states.get(t) !== null);
  const tombstone: Tombstone = {
    userIdHash: hash,
    at: now,
    targets: {
      ...(previous?.targets ?? {}),
      ...Object.fromEntries(
        Object.entries(results).map(([t, r]) => [t, r.ok ? r.action : 'failed'] as const),
      ),
    },
    times: (previous?.times ?? 0) + 1,
  };
  await redis.hset(tombstonesKey(layout), hash, JSON.stringify(tombstone));
  deps.logger.info(
    { event: 'user.forgotten', userIdHash: hash, targets: tombstone.targets, erased, ok },
    'forget: user erased',
  );
  return {
    userIdHash: hash,
    noop: false,
    ...(previous ? { previous } : {}),
    targets: results,
    erased,
    remaining: [...swept.remaining, ...activeJobs],
    ...(untouched.length ? { untouched } : {}),
    ...(stillInSource !== undefined ? { stillInSource } : {}),
    ...(sourceError ? { sourceError } : {}),
    ok,
  };
}

function addEmail(set: Set<string>, v: unknown): void {
  if (typeof v === 'string' && /^[^@\s]+@[^@\s]+$/.test(v.trim())) set.add(v.trim().toLowerCase());
}
