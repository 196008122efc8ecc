import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, type Dispatcher } from 'undici';
import type { HttpConfig } from '../config/schema.js';
import { SyncError } from '../core/errors.js';
import type { TargetId } from '../core/targets.js';
import type { RequestRecord, RequestScope } from '../core/types.js';
import type { Logger } from '../log.js';
import { classify, classifyStatus, errorCodeOf, parseRetryAfter } from './http-errors.js';
import type { Throttle } from './types.js';

export type HttpTarget = TargetId | 'source';
export type HttpMethod = 'GET' | 'HEAD' | 'PUT' | 'DELETE' | 'POST' | 'PATCH';
export type QueryValue = string | number | boolean | undefined | null;

/**
 * A request that waited longer than this for its grant rebuilds its headers and looks at the 429
 * pause once more before it leaves (`Throttle.hold`): 10 s, far below Zephr's 300 s JWT lifetime.
 */
export const STALE_HEADERS_AFTER_MS = 10_000;

/** Methods safe to resend after a transient failure (RFC 9110 §9.2.2). PATCH and POST are not. */
export const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS']);

/** HTTP-level retry policy. Kept short on purpose: job retries (issue 4) sit on top and must not multiply. */
export interface RetryOptions {
  /** Extra tries after the first, for idempotent methods on transient failures. @defaultValue 2 */
  retries?: number;
  /**
   * Backoff before retry n (1-based) is uniform in [minDelayMs, 2 * minDelayMs] * 2^(n-1), capped at
   * maxDelayMs: with the defaults 100-200 ms, then 200-400 ms. Long enough for a reset connection or a
   * restarted upstream pod, short enough that a job attempt does not stall a worker slot.
   * @defaultValue 100
   */
  minDelayMs?: number;
  /** @defaultValue 400 */
  maxDelayMs?: number;
}

export interface HttpClientOptions {
  /** Who we talk to; named in every error and log line. */
  target: HttpTarget;
  /** Origin plus optional base path (`https://x.zendesk.com`, `http://127.0.0.1:4100/engine-rest`). */
  baseUrl: string;
  /** Timeouts and connections per origin (src/config/schema.ts `httpSchema`). */
  http: HttpConfig;
  /** A MockAgent in request-shape tests. When absent, an undici Agent is created and closed by `close()`. */
  dispatcher?: Dispatcher;
  logger: Logger;
  /**
   * Auth and other headers, computed per try (Zephr mints a JWT per user, so `userId` is passed).
   * Values never reach logs or error messages.
   */
  headers?: (ctx: {
    userId?: string;
    method: string;
    path: string;
  }) => Record<string, string> | Promise<Record<string, string>>;
  /** The engine's global rate limiter, awaited before every try (retries included). */
  throttle?: Throttle;
  /** `false` disables HTTP-level retries. */
  retry?: RetryOptions | false;
  /** Largest response body read, in bytes; larger is a permanent error. @defaultValue 64 MiB */
  maxBodyBytes?: number;
}

export interface HttpRequest {
  method: HttpMethod;
  /** Path below the base URL, already percent-encoded where it carries ids (`encodeURIComponent`). */
  path: string;
  /** Encoded with encodeURIComponent (space -> %20, `+` -> %2B); undefined/null values are left out. */
  query?: Record<string, QueryValue | readonly QueryValue[]>;
  /** Sent as JSON. */
  body?: unknown;
  /** The source user this request is for: in logs, records and errors. */
  userId?: string;
  /** Extra headers for this request only (override `headers()`). */
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** The job attempt this request is sent for: handed to the throttle (its count, its abort signal). */
  scope?: RequestScope;
  /** A POST that only reads (Prelude's batch_lookup): retried on transient failures like a GET. */
  readOnly?: boolean;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** Parsed JSON, or undefined when the body is empty or not JSON. */
  body: unknown;
  /** Every try of this request, the last one answered with `status`. */
  records: RequestRecord[];
  /** Request id of the last try. */
  requestId: string;
  /** The path and query as sent (for messages and plans). */
  path: string;
}

export interface HttpClient {
  readonly target: HttpTarget;
  request(req: HttpRequest): Promise<HttpResponse>;
  /** Builds the SyncError for a response the connector considers a failure. */
  fail(req: Pick<HttpRequest, 'method' | 'userId'>, res: HttpResponse): SyncError;
  close(): Promise<void>;
}

/** `path?query` as sent, with encodeURIComponent so that `+`, `:`, `/` and spaces are unambiguous. */
export function buildPath(
  basePath: string,
  path: string,
  query?: Record<string, QueryValue | readonly QueryValue[]>,
): string {
  const base = basePath.replace(/\/+$/, '');
  const p = path.startsWith('/') ? path : `/${path}`;
  const parts: string[] = [];
  for (const [k, v] of Object.entries(query ?? {})) {
    const values = Array.isArray(v) ? v : [v];
    for (const one of values) {
      if (one === undefined || one === null) continue;
      parts.push(`${encodeURIComponent(k)}=${encodeURIComponent(String(one))}`);
    }
  }
  return `${base}${p}${parts.length ? `?${parts.join('&')}` : ''}`;
}

function jitteredDelay(attempt: number, minDelayMs: number, maxDelayMs: number): number {
  const base = minDelayMs * 2 ** (attempt - 1);
  return Math.min(maxDelayMs, base + Math.random() * base);
}

class BodyTooLargeError extends Error {
  readonly code = 'E_BODY_TOO_LARGE';
}

async function readBody(body: Dispatcher.ResponseData['body'], maxBytes: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) {
      body.destroy();
      throw new BodyTooLargeError(`response body larger than ${maxBytes} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function parseJson(text: string): unknown {
  if (text.length === 0) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Creates the HTTP client of one connector. */
export function createHttpClient(options: HttpClientOptions): HttpClient {
  const { target, http, logger, throttle } = options;
  const base = new URL(options.baseUrl);
  const origin = base.origin;
  const basePath = base.pathname;
  const retry = options.retry === false ? { retries: 0 } : (options.retry ?? {});
  const retries = retry.retries ?? 2;
  const minDelayMs = retry.minDelayMs ?? 100;
  const maxDelayMs = retry.maxDelayMs ?? 400;
  const maxBodyBytes = options.maxBodyBytes ?? 64 * 1024 * 1024;
  const ownDispatcher = options.dispatcher === undefined;
  const dispatcher =
    options.dispatcher ??
    new Agent({
      connections: http.connections,
      connect: { timeout: http.connectTimeoutMs },
      headersTimeout: http.headersTimeoutMs,
      bodyTimeout: http.bodyTimeoutMs,
      // Keep idle sockets a little longer than undici's 4 s default: a worker between two jobs of the
      // same target should find its connection still open.
      keepAliveTimeout: 10_000,
    });

  async function once(
    req: HttpRequest,
    path: string,
    attempt: number,
    records: RequestRecord[],
  ): Promise<HttpResponse> {
    // The headers first, then the grant: the grant (which refuses while a 429 pause runs, issue 8.5)
    // is the last look before the request leaves, with nothing awaited between it and the dispatch.
    const headerArgs = { userId: req.userId, method: req.method, path };
    let computed = options.headers ? await options.headers(headerArgs) : {};
    if (throttle) {
      const waitStarted = performance.now();
      await throttle(req.scope);
      if (performance.now() - waitStarted > STALE_HEADERS_AFTER_MS) {
        // A long wait (rate budget, 429 pause): rebuild the headers (Zephr's JWT lives <= 300 s),
        // then look again whether a 429 paused the target meanwhile (waits it out if so).
        if (options.headers) computed = await options.headers(headerArgs);
        if (throttle.hold) await throttle.hold(req.scope);
      }
    }
    const requestId = randomUUID();
    const headers: Record<string, string> = {
      accept: 'application/json',
      ...computed,
      ...req.headers,
      'x-request-id': requestId,
    };
    let payload: string | undefined;
    if (req.body !== undefined) {
      payload = JSON.stringify(req.body);
      headers['content-type'] = 'application/json';
    }
    const started = performance.now();
    // Only when it is logged: the fields object per request is measurable at thousands a second.
    const log = () => ({ target, requestId, method: req.method, path, attempt, userId: req.userId });
    try {
      const res = await dispatcher.request({
        origin,
        path,
        method: req.method,
        headers,
        body: payload,
        headersTimeout: http.headersTimeoutMs,
        bodyTimeout: http.bodyTimeoutMs,
        signal: req.signal,
      });
      // Issue 8.5: a 429 pauses the target for every request of every process (the throttle holds
      // the shared "paused until"), first thing, before anything else can be granted meanwhile.
      if (res.statusCode === 429 && throttle?.pause) {
        const wait = parseRetryAfter(res.headers['retry-after'] as string | string[] | undefined);
        await throttle.pause(wait).catch((e: unknown) => {
          logger.warn({ target, requestId, err: errorCodeOf(e) }, 'could not record the 429 pause');
        });
      }
      const text = await readBody(res.body, maxBodyBytes);
      const durationMs = Math.round(performance.now() - started);
      records.push({ method: req.method, path, status: res.statusCode, durationMs, requestId, attempt });
      if (logger.isLevelEnabled('debug'))
        logger.debug({ ...log(), status: res.statusCode, durationMs }, 'http response');
      return {
        status: res.statusCode,
        headers: res.headers as Record<string, string | string[] | undefined>,
        body: parseJson(text),
        records,
        requestId,
        path,
      };
    } catch (error) {
      if (req.signal?.aborted) throw error; // the caller gave up: not a vendor failure
      const durationMs = Math.round(performance.now() - started);
      const errorCode = errorCodeOf(error);
      records.push({ method: req.method, path, errorCode, durationMs, requestId, attempt });
      logger.debug({ ...log(), errorCode, durationMs }, 'http request failed');
      throw classify({ target, method: req.method, path, userId: req.userId, requestId, error });
    }
  }

  async function request(req: HttpRequest): Promise<HttpResponse> {
    const path = buildPath(basePath, req.path, req.query);
    const records: RequestRecord[] = [];
    const tries = IDEMPOTENT_METHODS.has(req.method) || req.readOnly ? 1 + retries : 1;
    for (let attempt = 1; ; attempt++) {
      let res: HttpResponse | undefined;
      let failure: SyncError | undefined;
      try {
        res = await once(req, path, attempt, records);
      } catch (e) {
        if (!(e instanceof SyncError)) throw e;
        failure = e;
      }
      // 429 is never retried here: the job layer waits Retry-After without spending an attempt.
      const transient = failure
        ? failure.errorClass === 'transient'
        : classifyStatus(res!.status) === 'transient' && res!.status >= 400;
      if (!transient || attempt >= tries) {
        if (failure) throw failure;
        return res!;
      }
      const delay = jitteredDelay(attempt, minDelayMs, maxDelayMs);
      logger.debug(
        {
          target,
          method: req.method,
          path,
          attempt,
          status: res?.status,
          errorCode: failure?.vendorCode,
          delay,
        },
        'http retry',
      );
      await sleep(delay, undefined, req.signal ? { signal: req.signal } : undefined);
    }
  }

  return {
    target,
    request,
    fail(req, res) {
      return classify({
        target,
        method: req.method,
        path: res.path,
        userId: req.userId,
        requestId: res.requestId,
        response: res,
      });
    },
    async close() {
      if (ownDispatcher) await dispatcher.close();
    },
  };
}
