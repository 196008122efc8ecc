/**
 * The data every layer shares: a source user, the flat field maps written to targets, their diffs and
 * the outcome words of a run. Types only (and OUTCOMES); imports nothing of the project.
 */

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

/**
 * Counts the HTTP requests of one job attempt: the throttle increments it before every request. Handed
 * down explicitly (a connector call's last argument, `Change.scope`, then `HttpRequest.scope`), not
 * through an AsyncLocalStorage, whose promise hooks taxed every promise of the worker (issue 11).
 */
export interface RequestScope {
  sent: number;
  /** Aborted when the job's run is aborted: a request still waiting for the rate budget gives up. */
  signal?: AbortSignal;
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
  /**
   * Prelude, no `linkedId`: the run has already looked this user up and found nobody, so a plan holds
   * only the create (PRELUDE_CREATE_USERS=true), not another lookup nor a PATCH.
   */
  lookedUp?: boolean;
  /** The job attempt's request count and abort signal, handed to every request this write sends. */
  scope?: RequestScope;
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
