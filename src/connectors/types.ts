import type { Dispatcher } from 'undici';
import type { TargetId } from '../core/targets.js';
import type {
  Change,
  FieldMap,
  ItemResult,
  PlannedRequest,
  RemoveResult,
  RequestRecord,
  RequestScope,
  SourcePage,
  SourceRecord,
  SourceUser,
} from '../core/types.js';
import type { Logger } from '../log.js';

export interface TargetLimits {
  /** Requests per minute allowed across all workers. */
  requestsPerMinute: number;
}

/**
 * A target connector. Every method throws SyncError (src/core/errors.ts) on failure, already
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
   * Issue 11: the mapping's digest (src/config/mapping.ts): equal digests map every user alike. Without
   * one the scan compares every user (no block conclusions, jobs/scan-blocks.ts).
   */
  readonly mappingDigest?: string;
  /**
   * The managed fields the target holds now, or null when it holds no profile for the user.
   * Used by `--full` to find drift. Targets with no read endpoint (Prelude) return `undefined`.
   */
  read(user: SourceUser, linkedId?: string, scope?: RequestScope): Promise<FieldMap | null | undefined>;
  write(change: Change): Promise<ItemResult>;
  /**
   * The requests `write(change)` would send if the target held exactly `change.previous`, without sending
   * anything: `--dry-run`, `--plan FILE` and `config check` print these. Bodies are unmasked here; callers mask PII.
   */
  plan(change: Change): PlannedRequest[];
  /** Deletes or clears the user's managed data (issue 5). */
  remove(
    user: SourceUser,
    previous: FieldMap | null,
    linkedId?: string,
    scope?: RequestScope,
  ): Promise<RemoveResult>;
  /**
   * Issue 10: a target whose users must be linked to the target's own ids before any write (Prelude):
   * how to find the links. Absent for targets keyed by our id.
   */
  readonly linker?: TargetLinker;
  close(): Promise<void>;
}

/** A link found by a lookup or made by a create (issue 10). */
export interface FoundLinkResult {
  sourceId: string;
  preludeUserId: string;
  how: 'external_id' | 'email' | 'create';
}

export interface LinkLookupResult {
  found: FoundLinkResult[];
  /** Every request sent (each also counted in the run's `requests`). */
  requests: RequestRecord[];
  /** How many lookup requests were sent (one per 100 users). */
  lookups: number;
}

export interface TargetLinker {
  /** `PRELUDE_LINK_BY`. */
  readonly linkBy: 'external_id' | 'email' | 'external_id,email' | 'template' | 'table';
  /** Whether users without a link are looked up (`external_id` and/or `email`). */
  readonly looksUp: boolean;
  /** `PRELUDE_CREATE_USERS`: a user no lookup found is created. */
  readonly createUsers: boolean;
  /** Looks the users up, one request per 100; the found ones (users not found are simply absent). */
  lookup(users: readonly SourceUser[], scope?: RequestScope): Promise<LinkLookupResult>;
  /** The lookup request for (the first 100 of) these users, for plans and `config check`. */
  planLookup(users: readonly SourceUser[]): PlannedRequest[];
  /** Creates the user; `preludeUserId` undefined when it cannot be created (no email). */
  create(
    user: SourceUser,
    fields: FieldMap,
    scope?: RequestScope,
  ): Promise<{ preludeUserId: string | undefined; requests: RequestRecord[] }>;
  planCreate(user: SourceUser, fields: FieldMap): PlannedRequest[];
}

/**
 * Called before every HTTP request a connector sends: the engine's global per-target rate limiter.
 * `pause(ms)`: the target answered 429 with that Retry-After; the HTTP layer calls it at once, and no
 * request to the target is granted, in any process, until the (capped) wait is over (issue 8.5);
 * `hold()`: the last look before a granted request leaves.
 */
export interface Throttle {
  /** Resolves when the request may leave (the engine's resolves with the grant time, Redis ms). */
  (scope?: RequestScope): Promise<unknown>;
  pause?: (retryAfterMs: number) => Promise<unknown>;
  /** After a long wait for the grant (headers rebuilt): waits out a pause set since the grant. */
  hold?: (scope?: RequestScope) => Promise<unknown>;
}

export interface ConnectorDeps {
  logger: Logger;
  /** A MockAgent in request-shape tests; an Agent with keep-alive otherwise. */
  dispatcher?: Dispatcher;
  throttle?: Throttle;
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
    /**
     * Pages requested ahead while the current one is consumed, so the source's answer time overlaps
     * the caller's work; memory holds 1 + prefetch pages. @defaultValue 0
     */
    prefetch?: number;
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
