import type { BackoffStrategy } from 'bullmq';
import { isSyncError } from '../core/errors.js';

/** The name jobs give in `backoff: {type}` so that BullMQ calls our strategy. */
export const FULL_JITTER = 'full-jitter';

export interface BackoffPolicy {
  /** Ceiling of the first retry's delay. @defaultValue 2000 (`SYNC_BACKOFF_BASE_MS`) */
  baseMs: number;
  /** Largest ceiling. @defaultValue 300000 (`SYNC_BACKOFF_MAX_MS`) */
  maxMs: number;
}

/**
 * Exponential backoff with full jitter: the delay before retry n is uniform in
 * [0, min(max, base * 2^(n-1))]. Full jitter spreads the retries of a thousand jobs that failed in the
 * same second (a vendor blip) over the whole interval instead of sending them back in one wave.
 * With the defaults (base 2 s, max 300 s, 8 attempts) the ceilings of the 7 retries are
 * 2, 4, 8, 16, 32, 64, 128 s: on average 1+2+4+8+16+32+64 = 127 s of waiting (at most 254 s) before a
 * job that keeps failing lands in the failed set; a vendor outage of about four minutes is ridden out.
 */
export function fullJitterDelay(
  attemptsMade: number,
  policy: BackoffPolicy,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, attemptsMade - 1));
  return Math.floor(random() * ceiling);
}

/**
 * The delay before the retry after try `attemptsMade`. A transient error that carries a `Retry-After`
 * (503) waits at least that long: the vendor said when it will be back.
 */
export function retryDelay(attemptsMade: number, policy: BackoffPolicy, err: unknown): number {
  const delay = fullJitterDelay(attemptsMade, policy);
  const floor = isSyncError(err) && err.retryAfterMs !== undefined ? err.retryAfterMs : 0;
  return Math.max(delay, Math.min(floor, policy.maxMs));
}

/**
 * BullMQ's `settings.backoffStrategy`. A job whose payload says `tried` (a user handed over by a sync
 * batch after its first try, jobs/sync-handover.ts) counts those tries too: the user's n-th retry
 * waits as long as a single job's.
 */
export function backoffStrategy(policy: BackoffPolicy): BackoffStrategy {
  return (attemptsMade, _type, err, job) => {
    const tried = (job?.data as { tried?: unknown } | undefined)?.tried;
    return retryDelay(attemptsMade + (typeof tried === 'number' ? tried : 0), policy, err);
  };
}
