import type { IncomingHttpHeaders } from 'node:http';

/** The value of `SimRequest.body` when the request had a body that is not valid JSON. */
export const INVALID_JSON: unique symbol = Symbol('INVALID_JSON');

/** One request as a vendor handler sees it. */
export interface SimRequest {
  method: string;
  /** As received: still percent-encoded, without the query string. */
  rawPath: string;
  /** Path parameters of the matched route pattern (`/user/:id/profile`), percent-decoded. */
  params: Record<string, string>;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  rawBody: Buffer;
  /** Parsed JSON; `INVALID_JSON` when the body does not parse; `undefined` when the body is empty. */
  body: unknown;
  /** Id of the authenticated credential: the rate-limit bucket key. `inspector` on `/__sandbox/` routes. */
  credential: string;
}

/**
 * A vendor's answer. `body` is sent as JSON unless it is a string or Buffer (sent as is, `text/plain`
 * unless `headers` says otherwise); no body when undefined.
 */
export interface SimResponse {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export type Handler = (req: SimRequest) => SimResponse | Promise<SimResponse>;

/**
 * `pattern` segments starting with `:` are parameters (one whole segment each). The route's name, used by
 * counters, the request log and fault matching, is `${method} ${pattern}`.
 */
export interface Route {
  method: string;
  pattern: string;
  handler: Handler;
}

export type UnauthenticatedRequest = Omit<SimRequest, 'credential'>;

export type VendorName = 'source' | 'sunshine' | 'zephr' | 'prelude';

/** A simulated service: its routes, its authentication and its error shapes. The kit does the rest. */
export interface Vendor {
  name: VendorName;
  routes: Route[];
  /**
   * The server decodes an encoded slash (`%2F`) before routing, as Camunda's does
   * (vendor-facts.md): `%2F` splits the path, and an id holding `/` must be sent as `%252F`.
   */
  decodesSlashBeforeRouting?: boolean;
  /** Authenticates a request: the credential id, or the vendor's own 401 (or 403) response. */
  authenticate(
    req: UnauthenticatedRequest,
  ): { credential: string } | SimResponse | Promise<{ credential: string } | SimResponse>;
  /** The vendor's 429 (status, headers and body), given the wait and the bucket's limit and remaining. */
  tooManyRequests(retryAfterSeconds: number, limit: number, remaining: number): SimResponse;
  /** The vendor's error answer for a status: 404 no route, 405, 413, injected 500/502/503, a handler crash. */
  errorResponse(status: number, message: string): SimResponse;
  /** Vendor state for `GET /__sandbox/state`. */
  state(): unknown;
  /** Extra inspection routes; their patterns start with `/__sandbox/`. Never authenticated, limited or faulted. */
  inspect?: Route[];
  /** Back to the state the vendor started with (`POST /__sandbox/reset`). */
  reset?(): void;
}

/** `{perMinute, burst}`: a token bucket per credential holding `burst` tokens, refilled `perMinute/60` a second. */
export interface RateLimit {
  perMinute: number;
  burst: number;
}

export type FaultKind = 'status' | 'reset' | 'hang' | 'latency' | 'body';

/** Which requests a fault rule applies to. Every given field must match. */
export interface FaultMatch {
  method?: string;
  /** A route name (`PUT /user/:id/profile`) or just its pattern (`/user/:id/profile`). */
  route?: string;
  /** A regular expression tested against the raw (percent-encoded) path. */
  pathRegex?: string;
  /** Query parameters that must be present with exactly these values. */
  query?: Record<string, string>;
}

/**
 * A fault: `status` answers `status` (default 500) with the vendor's error body; `reset` destroys the
 * socket without an answer; `hang` never answers (the client's timeout must fire); `latency` delays the
 * request by `latencyMs` and then lets it through (it combines with later rules); `body` answers `status`
 * (default 200) with `body` sent verbatim (default an HTML error page) as `contentType` (default
 * `text/html`): what a proxy or a captive portal answers in the vendor's place, an unreadable read.
 */
export interface FaultRule {
  kind: FaultKind;
  /** Share of matching requests that fault, 0..1, drawn from the simulator's seeded PRNG. @defaultValue 1 */
  rate?: number;
  /** @defaultValue 500 (kind `status`), 200 (kind `body`) */
  status?: number;
  /** The raw answer of kind `body`. @defaultValue `BODY_FAULT_DEFAULT` */
  body?: string;
  /** The `content-type` of kind `body`. @defaultValue `text/html; charset=utf-8` */
  contentType?: string;
  /** @defaultValue 0 (kind `latency` only) */
  latencyMs?: number;
  match?: FaultMatch;
  /** The rule expires after faulting this many requests. @defaultValue unlimited */
  times?: number;
}

/** Responses by route name and status: `{byRoute: {"PUT /user/:id/profile": {"204": 10}}, total: 10}`. */
export interface Counters {
  byRoute: Record<string, Record<string, number>>;
  total: number;
}

/** One entry of the request log. `t` is epoch milliseconds at arrival; `status` 0 = reset or hang. */
export interface LoggedRequest {
  t: number;
  method: string;
  route: string;
  status: number;
  credential: string;
}

export interface SimOptions {
  /** @defaultValue '127.0.0.1' */
  host?: string;
  /** 0 = an ephemeral port. @defaultValue 0 */
  port?: number;
  /** Token bucket per credential; absent or null = unlimited. */
  rateLimit?: RateLimit | null;
  faults?: FaultRule[];
  /** Seed of the PRNG that decides which requests a fault with `rate < 1` hits. @defaultValue 1 */
  faultSeed?: number;
  /** Largest accepted request body; larger ones get the vendor's 413. @defaultValue 16 MiB */
  maxBodyBytes?: number;
  /** Entries the request log keeps (a ring buffer). @defaultValue 200000 */
  logCapacity?: number;
  /** Clock for the token buckets and the request log, for tests. @defaultValue Date.now */
  now?: () => number;
}

/** A running simulator. */
export interface Sim {
  readonly vendor: Vendor;
  /** `http://host:port`, no trailing slash. */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
  counters(): Counters;
  resetCounters(): void;
  /** Log entries with `t >= since` (epoch ms), oldest first. */
  requests(since?: number): LoggedRequest[];
  faults(): FaultRule[];
  setFaults(rules: FaultRule[]): void;
  rateLimit(): RateLimit | null;
  setRateLimit(limit: RateLimit | null): void;
  /** Vendor state, counters, log, faults and buckets back to how the simulator started. */
  reset(): void;
  /**
   * Calls `listener` with every request a route handler answered (after auth, rate limit and faults),
   * with its parsed JSON body: for contract tests that validate what a client really sent. Returns the
   * function that removes the listener.
   */
  tap(listener: (req: TappedRequest) => void): () => void;
}

/** A request as a route handler received it, and the status it answered. */
export interface TappedRequest {
  method: string;
  /** `${method} ${pattern}`, as in the request log. */
  route: string;
  /** The path and query as sent (percent-encoded). */
  rawPath: string;
  /** Parsed JSON body (undefined when there was none). */
  body: unknown;
  status: number;
}
