import { type ErrorClass, SyncError } from '../core/errors.js';
import type { HttpTarget } from './http.js';

/**
 * The one error classifier of the HTTP layer (src/connectors/http.ts): status codes, vendor error
 * codes, socket/DNS error codes and `Retry-After` become a classified SyncError (transient, rate
 * limited, rejected, auth, ...). Connectors call `classify()` on a response they consider a failure.
 */

/**
 * Default wait for a 429 whose `Retry-After` is absent or unparseable: 60 s, one full window of the
 * per-minute limits every vendor here works with (Zendesk documents limits per minute, seed 003), so a
 * guess never makes us hit the limit again within the same window.
 */
export const DEFAULT_RETRY_AFTER_MS = 60_000;

/**
 * undici and Node socket/DNS error codes that mean "no (complete) answer; the same request may work
 * later". Anything else without a response (TLS certificate errors, invalid arguments, a MockAgent with
 * no matching interceptor) is permanent: retrying a configuration or programming error only hides it.
 */
export const TRANSIENT_ERROR_CODES: ReadonlySet<string> = new Set([
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EHOSTDOWN',
]);

/**
 * `Retry-After` in milliseconds: delta-seconds or HTTP-date (RFC 9110 §10.2.3). Absent or garbage ->
 * DEFAULT_RETRY_AFTER_MS; a date in the past -> 0.
 */
export function parseRetryAfter(
  value: string | string[] | undefined,
  now: number = Date.now(),
  fallbackMs: number = DEFAULT_RETRY_AFTER_MS,
): number {
  const v = (Array.isArray(value) ? value[0] : value)?.trim();
  if (!v) return fallbackMs;
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  // Only accept something that looks like an HTTP-date, not any string Date.parse happens to take.
  if (/^[A-Za-z]{3},\s/.test(v)) {
    const t = Date.parse(v);
    if (Number.isFinite(t)) return Math.max(0, t - now);
  }
  return fallbackMs;
}

/**
 * The vendor's own error code, looked up generically: `{code}` (Prelude, seed 004), `{errors:[{code}]}`
 * (Zendesk, seed 003), `{type}` (identity service, seed 002). Only short token-like strings are taken,
 * so a free-text field never ends up in a message.
 */
export function vendorErrorCode(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const b = body as Record<string, unknown>;
  const errors = Array.isArray(b.errors) ? (b.errors[0] as Record<string, unknown> | undefined) : undefined;
  const error = typeof b.error === 'object' && b.error !== null ? (b.error as Record<string, unknown>) : {};
  for (const c of [b.code, errors?.code, error.code, b.type]) {
    if (typeof c === 'string' && /^[\w.-]{1,64}$/.test(c)) return c;
    if (typeof c === 'number' && Number.isInteger(c)) return String(c);
  }
  return undefined;
}

/** Class of a non-2xx status. */
export function classifyStatus(status: number): ErrorClass {
  if (status === 429) return 'rate_limited';
  if (status === 401 || status === 403) return 'auth';
  if (status === 408 || status >= 500) return 'transient';
  return 'permanent';
}

/** The error code of a failed request: `code` on the error, its cause, or an AggregateError's first. */
export function errorCodeOf(err: unknown): string | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 4 && typeof e === 'object' && e !== null; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    const inner = (e as { errors?: unknown[] }).errors;
    e = Array.isArray(inner) && inner.length ? inner[0] : (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Class of a request that got no response. */
export function classifyErrorCode(code: string | undefined): ErrorClass {
  return code !== undefined && TRANSIENT_ERROR_CODES.has(code) ? 'transient' : 'permanent';
}

export interface ClassifyInput {
  target: HttpTarget;
  method: string;
  /** Path and query as sent. */
  path: string;
  userId?: string;
  requestId?: string;
  /** A response that came back. */
  response?: { status: number; headers?: Record<string, string | string[] | undefined>; body?: unknown };
  /** Or the error thrown when none came. */
  error?: unknown;
  now?: number;
}

/**
 * THE classifier (issue 3 "One error taxonomy"): by status and error `code` only, never message text.
 * 429 -> rate_limited (wait from Retry-After); 5xx, 408, timeouts, resets, refused, DNS -> transient;
 * 401/403 -> auth; other 4xx and unknown network errors -> permanent. `unlinked` is never decided here:
 * only a connector knows which 404 means "not linked" (Prelude `user_not_found`, seed 004).
 * The message names target, user id, method, path, status and vendor code; never a header or secret.
 */
export function classify(input: ClassifyInput): SyncError {
  const { target, method, path, userId, requestId, response } = input;
  const who = `${target}: ${method} ${path}${userId === undefined ? '' : ` (user ${userId})`}`;
  if (response) {
    const errorClass = classifyStatus(response.status);
    const vendorCode = vendorErrorCode(response.body);
    const retryAfter = response.headers?.['retry-after'];
    const retryAfterMs =
      errorClass === 'rate_limited'
        ? parseRetryAfter(retryAfter, input.now)
        : retryAfter !== undefined && errorClass === 'transient'
          ? parseRetryAfter(retryAfter, input.now)
          : undefined;
    const extra = [
      vendorCode === undefined ? '' : ` ${vendorCode}`,
      errorClass === 'rate_limited' ? `, retry after ${retryAfterMs} ms` : '',
    ].join('');
    return new SyncError(errorClass, `${who} failed: HTTP ${response.status}${extra}`, {
      target,
      userId,
      status: response.status,
      vendorCode,
      retryAfterMs,
      requestId,
    });
  }
  const code = errorCodeOf(input.error);
  const errorClass = classifyErrorCode(code);
  return new SyncError(errorClass, `${who} failed: no response (${code ?? 'unknown error'})`, {
    target,
    userId,
    vendorCode: code,
    requestId,
    cause: input.error,
  });
}
