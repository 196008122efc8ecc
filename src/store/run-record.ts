import type { TargetId } from '../core/targets.js';
import type { FieldDiff, FieldMap, Outcome, RequestRecord } from '../core/types.js';
import type { DeletionSettings, DeletionSummary } from './deletions.js';

/** What started a run. */
export type RunKind = 'scheduled' | 'backfill' | 'single-user' | 'retry';
/**
 * `held` is issue 5's: a run whose deletions wait for `--confirm-deletes`. `skipped` is a scheduled tick
 * that found the previous scheduled run still running (src/daemon/scheduler.ts): recorded, never run.
 */
export type RunStatus = 'running' | 'completed' | 'aborted' | 'failed' | 'held' | 'skipped';

/** The options a run was started with (recorded as given; never a secret). */
export interface RunOptions {
  targets: TargetId[];
  /** Only these source user ids (`--users`, `sync-user`); the scan is then not complete. */
  users?: string[];
  /** At most this many source records (`--limit`); the scan is then not complete. */
  limit?: number;
  /** Compute every diff and plan, send no write. @defaultValue false */
  dryRun: boolean;
  /** Ignore hashes and read each target's current state (drift repair). @defaultValue false */
  full: boolean;
  /** Store diffs unmasked (`--show-pii` or `RECORD_PII`). @defaultValue false */
  showPii: boolean;
  /** Keep every planned request in the run record (`--plan FILE`). @defaultValue false */
  plan: boolean;
  /** `retry-failed`: the run whose dead letters this run re-drives. */
  retryOf?: string;
  /** Abort once failed+rejected exceed this share after the first 100 users. */
  maxFailureRate?: number;
  /** Issue 5: the per-target policy for users who left the source and the safety brake, as in force at the start. */
  deletions?: DeletionSettings;
}

/**
 * Where the source scan of a run stands. `complete` is true only when every page was read and the scan
 * was neither limited (`--limit`, `--users`) nor aborted: issue 5 concludes that a user left the source
 * only from a complete scan.
 */
export interface ScanInfo {
  status: 'pending' | 'running' | 'done' | 'failed' | 'aborted';
  complete: boolean;
  limited: boolean;
  /** `GET /user/count` at the start, for progress. */
  total?: number;
  /** Distinct source records read (a user read twice counts once). */
  records: number;
  pages: number;
  error?: string;
  /** Records read again within this scan (the list moved, or a restarted pass): counted once, logged (issue 8.12). */
  duplicates?: number;
  /** Passes restarted because the source's list moved under the scan (issue 8.1). */
  restarts?: number;
  /** Deletion candidates re-checked against the source, and of those found again (synced, not gone). */
  rechecked?: number;
  foundAgain?: number;
  /** Issue 11: users counted from block conclusions without a read of their states (jobs/scan-blocks.ts). */
  trusted?: number;
  /** Issue 11: blocks this scan concluded (found every user unchanged), for the next scan to trust. */
  concluded?: number;
}

/** One earlier attempt of a sync job that failed and was retried. */
export interface AttemptRecord {
  attempt: number;
  at: number;
  error: Record<string, unknown>;
  /** HTTP requests sent during that attempt (counted at the throttle). */
  requestsSent: number;
}

/** One recorded change, rejection or failure of one user in one target. */
export interface RunItem {
  userId: string;
  target: TargetId;
  outcome: Outcome;
  /** Field-level diff applied (or planned, in a dry run); masked unless the run stores PII. */
  diff?: FieldDiff;
  /** `--full`: what changed in the target outside profile-sync (last written vs read), masked likewise. */
  drift?: FieldDiff;
  /** `rejected`: why. */
  reason?: string;
  /** Job attempts used (1 = first try succeeded). */
  attempts: number;
  requests: RequestRecord[];
  /** Earlier failed attempts (transient errors, retried with backoff). */
  tries?: AttemptRecord[];
  lastError?: Record<string, unknown>;
  jobId?: string;
  dryRun?: boolean;
  /** `removed` / `orphaned`: the payload profile-sync last wrote (masked unless the run stores PII). */
  payload?: FieldMap;
  /** `orphaned` because the safety brake held the run's removals (`backfill --confirm-deletes`). */
  held?: boolean;
  at: number;
}

export type OutcomeCounts = Record<Outcome, number>;

export interface TargetRunCounts {
  outcomes: OutcomeCounts;
  /** HTTP requests actually sent (every try, HTTP-level retries included). */
  requests: number;
  /** Requests a dry run would send. */
  planned: number;
  /** Job attempts that failed and were retried. */
  retries: number;
  /** 429 answers that paused the queue (no attempt spent). */
  rateLimited: number;
  /** Times a 429 lowered the target's effective rate limit (AIMD, src/queue/throttle.ts). */
  limitCuts: number;
  /** Jobs dropped because the run was aborted or the target stopped before they ran. */
  skipped: number;
  /** Issue 10: Prelude `batch_lookup` requests sent to find links (also counted in `requests`). */
  lookups: number;
  /**
   * Issue 10: Prelude users created (PRELUDE_CREATE_USERS=true); in a dry run the creates planned, an
   * upper bound (a create answered 409, the address already a login, leaves the user unlinked).
   */
  creates: number;
  /** Why the target was stopped in this run (auth, or a Retry-After beyond RATE_LIMIT_MAX_WAIT), if it was. */
  stopped?: string;
  /** What stopped it: `auth`, or `rate_limited` (issue 8.3). Set with `stopped`. */
  stoppedBy?: 'auth' | 'rate_limited';
  /** Issue 11.3: items kept in the run record for this target (at most the run's `itemsMax`). */
  itemsKept?: number;
  /** Issue 11.3: items left out of the run record (cap reached), per outcome; absent when none. */
  itemsLeftOut?: Partial<OutcomeCounts>;
}

export interface RunRecord {
  id: string;
  kind: RunKind;
  status: RunStatus;
  startedAt: number;
  endedAt?: number;
  options: RunOptions;
  scan: ScanInfo;
  targets: Partial<Record<TargetId, TargetRunCounts>>;
  /** Sync jobs enqueued / finished for good: the run is over when the scan is and these are equal. */
  enqueued: number;
  settled: number;
  abortReason?: string;
  error?: string;
  /** Issue 5: what detection found per target after a complete scan, and whether the brake held. */
  deletions?: DeletionSummary;
  /** Issue 11.3: the cap on items kept per target (`RUN_ITEMS_MAX` when the run was created); absent = none. */
  itemsMax?: number;
}

/**
 * Issue 8.3: the prefix of a target's stop reason when it asked (429 Retry-After) to wait longer than
 * RATE_LIMIT_MAX_WAIT. Such a target is stopped for the run like an auth stop (its remaining jobs
 * fail without a request into the dead letters, for `retry-failed` after the wait), but its state in
 * the run record and summary is `rate_limited`, not `auth`.
 */
export const RATE_LIMITED_STOP = 'rate_limited: ';

/** Why a target was stopped: `rate_limited` (issue 8.3) or `auth`. */
export function stopKind(reason: string): 'auth' | 'rate_limited' {
  return reason.startsWith(RATE_LIMITED_STOP) ? 'rate_limited' : 'auth';
}

/** Retention of run records. */
export interface RunRetention {
  /** Runs kept, newest first. @defaultValue 200 */
  keep: number;
  /** Runs (and history entries) older than this are deleted. @defaultValue 30 days */
  maxAgeMs: number;
  /** History entries kept per user, newest first. @defaultValue 200 */
  historyPerUser: number;
  /** Items kept per target per run (`RUN_ITEMS_MAX`, issue 11.3), failures and rejections first. @defaultValue 10000 */
  itemsMax: number;
}

/** Sees every item this process records (masked as stored), e.g. `backfill --items-file`. */
export type ItemListener = (runId: string, items: RunItem[]) => void;

export const DEFAULT_RETENTION: RunRetention = {
  keep: 200,
  maxAgeMs: 30 * 24 * 3600_000,
  historyPerUser: 200,
  itemsMax: 10_000,
};

/** A history entry: one item of one run. */
export interface HistoryEntry {
  runId: string;
  kind: RunKind;
  index: number;
  item: RunItem;
}

/** Counter increments: `[target, counter, by]`; counter is an outcome or `requests|planned|retries|rateLimited|limitCuts|skipped`. */
export type CounterDelta = [
  TargetId,
  (
    | Outcome
    | 'requests'
    | 'planned'
    | 'retries'
    | 'rateLimited'
    | 'limitCuts'
    | 'skipped'
    | 'lookups'
    | 'creates'
  ),
  number,
];

/** What a job reads before it sends anything (`RunStore.jobGate`, issue 11.2). */
export interface JobGate {
  exists: boolean;
  abort?: string;
  stopped?: string;
  pii: boolean;
  plan: boolean;
  maxFailureRate?: number;
  /** The job's member already settled (a replay); false when no member was asked. */
  settled: boolean;
  /** The extra [hash, field] values asked, in order (null: absent). */
  reads: (string | null)[];
}
