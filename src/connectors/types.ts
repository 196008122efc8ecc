import type { Dispatcher } from 'undici';
import type { TargetId } from '../config/schema.js';
import type { Logger } from '../log.js';

/** A user as the identity service returns it (seed 002: `{id, firstName, lastName, email}`). */
export interface SourceUser {
  id: string;
  firstName?: string | null;
  lastName?: string | null;
  email?: string | null;
}

/** A value a mapping may produce. Prelude accepts strings only (seed 004), checked at config load. */
export type FieldValue = string | number | boolean;

/**
 * What profile-sync manages in one target for one user, as a flat map of dotted field names to values:
 * Sunshine `name`, `identifiers.email`, `attributes.first_name`; Zephr and Prelude plain keys.
 * Flat maps make hashing, field-level diffs and "which managed field disappeared" trivial; each
 * connector turns one into its vendor's payload.
 */
export type FieldMap = Record<string, FieldValue>;

/** `{field: {from, to}}`; `from` undefined means added, `to` undefined means removed. */
export type FieldDiff = Record<string, { from?: FieldValue; to?: FieldValue }>;

export type WriteOutcome = 'created' | 'updated' | 'unchanged' | 'unlinked';
export type Outcome = WriteOutcome | 'rejected' | 'failed' | 'removed' | 'orphaned';
export const OUTCOMES: readonly Outcome[] = [
  'created',
  'updated',
  'unchanged',
  'unlinked',
  'rejected',
  'failed',
  'removed',
  'orphaned',
];

/** One HTTP exchange, as recorded in run records and `history` (no headers, no body, no secret). */
export interface RequestRecord {
  method: string;
  /** Path and query as sent (ids percent-encoded). */
  path: string;
  status?: number;
  /** undici error code when no response came (`UND_ERR_SOCKET`, `UND_ERR_HEADERS_TIMEOUT`, ...). */
  errorCode?: string;
  durationMs: number;
  requestId: string;
  /** 1 for the first try, 2.. for HTTP-level retries within one job attempt. */
  attempt: number;
}

/** What a target is asked to do for one user. */
export interface Change {
  userId: string;
  /** Desired managed state, from the mapping. */
  next: FieldMap;
  /**
   * What profile-sync believes the target holds: the last payload it wrote, or (with `--full`) what
   * `read()` returned. `null` when it never wrote this user (create path).
   */
  previous: FieldMap | null;
  /** The source user, for connectors that need more than the map (Zephr JWT `sub`, Prelude user id). */
  user: SourceUser;
  /** Prelude: the linked user id from the link table, overriding the template. */
  linkedId?: string;
}

export interface ItemResult {
  outcome: WriteOutcome;
  /** Field-level diff between `previous` and `next` as applied. */
  diff: FieldDiff;
  requests: RequestRecord[];
}

export interface RemoveResult {
  outcome: 'removed' | 'unchanged';
  /** `deleted` (Sunshine DELETE), `cleared` (Zephr `{}`, Prelude empty strings), `stripped` (Sunshine PUT without managed fields). */
  action: 'deleted' | 'cleared' | 'stripped' | 'absent';
  requests: RequestRecord[];
}

export interface TargetLimits {
  /** Requests per minute allowed across all workers. */
  requestsPerMinute: number;
}

/**
 * A target connector. Every method throws SyncError (src/connectors/errors.ts) on failure, already
 * classified. `requests` in results include HTTP-level retries.
 */
export interface TargetConnector {
  readonly id: TargetId;
  readonly limits: TargetLimits;
  /** Verifies URL and credentials with a cheap request; throws SyncError('auth' | 'transient' | ...). */
  check(): Promise<void>;
  /** The mapping: source user to managed fields. Throws RejectedRecordError when it cannot map. */
  map(user: SourceUser): FieldMap;
  /**
   * The managed fields the target holds now, or null when it holds no profile for the user.
   * Used by `--full` to find drift. Targets with no read endpoint (Prelude) return `undefined`.
   */
  read(user: SourceUser, linkedId?: string): Promise<FieldMap | null | undefined>;
  write(change: Change): Promise<ItemResult>;
  /**
   * The requests `write(change)` would send if the target held exactly `change.previous`, without sending
   * anything: `--dry-run`, `--plan FILE` and `config check` print these. Bodies are unmasked here; callers mask PII.
   */
  plan(change: Change): PlannedRequest[];
  /** Deletes or clears the user's managed data (issue 5). */
  remove(user: SourceUser, previous: FieldMap | null, linkedId?: string): Promise<RemoveResult>;
  close(): Promise<void>;
}

/**
 * Called before every HTTP request a connector sends: the engine's global per-target rate limiter.
 * `pause(ms)`: the target answered 429 with that Retry-After; the HTTP layer calls it at once, and no
 * request to the target is granted, in any process, until the (capped) wait is over (issue 8.5);
 * `hold()`: the last look before a granted request leaves.
 */
export interface Throttle {
  /** Resolves when the request may leave (the engine's resolves with the grant time, Redis ms). */
  (): Promise<unknown>;
  pause?: (retryAfterMs: number) => Promise<unknown>;
  /** After a long wait for the grant (headers rebuilt): waits out a pause set since the grant. */
  hold?: () => Promise<unknown>;
}

export interface ConnectorDeps {
  logger: Logger;
  /** A MockAgent in request-shape tests; an Agent with keep-alive otherwise. */
  dispatcher?: Dispatcher;
  throttle?: Throttle;
}

/** A request a connector would send (dry run, plan file, config check). No auth header, ever. */
export interface PlannedRequest {
  method: string;
  path: string;
  body?: unknown;
  /** Why this request: `create`, `patch changed fields`, `read current profile`, ... */
  note?: string;
}

/** One record from the source: valid users and rejected records alike, so one bad user never stops a scan. */
export type SourceRecord = { ok: true; user: SourceUser } | { ok: false; userId?: string; reason: string };

export interface SourcePage {
  /** 0-based page number. */
  index: number;
  firstResult: number;
  /** Records on this page. */
  size: number;
}

export interface SourceConnector {
  check(): Promise<void>;
  /** `GET /user/count`, for progress. */
  count(): Promise<number>;
  /**
   * Every user, page by page in userId order (`sortBy=userId&sortOrder=asc`), memory flat. Throws SyncError
   * when a page cannot be read after HTTP-level retries: the caller then knows the scan is incomplete.
   */
  scan(options?: {
    pageSize?: number;
    signal?: AbortSignal;
    onPage?: (page: SourcePage) => void;
  }): AsyncIterable<SourceRecord>;
  /** One user (`GET /user/{id}/profile`); null when the source answers 404. */
  getUser(id: string): Promise<SourceRecord | null>;
  /**
   * Many users (`GET /user?idIn=`, batched): the records the source returns, by id; an id missing from
   * the map was not returned. Throws SyncError on any answer that is not a sane list.
   */
  getUsers(ids: string[]): Promise<Map<string, SourceRecord>>;
  close(): Promise<void>;
}
