import type { TargetId } from './targets.js';

/**
 * One error taxonomy for every connector (issue 3). Classification happens in one place,
 * src/connectors/http.ts, by HTTP status and undici error `code`, never by message text; the sync jobs
 * turn each class into BullMQ behaviour:
 *
 * | class        | job behaviour                                                   |
 * |--------------|-----------------------------------------------------------------|
 * | rate_limited | `queue.rateLimit(retryAfterMs)` + RateLimitError: no attempt spent |
 * | transient    | exponential backoff with full jitter, attempts per class          |
 * | permanent    | recorded as `failed`, never retried (UnrecoverableError)          |
 * | auth         | the target is stopped for this run and the operator told          |
 *
 * `unlinked` (Prelude 404 user_not_found) is not an error class: the connector returns it as the
 * outcome of the write, so nothing can throw it past the job and have it retried or lost.
 *
 * Messages carry target, user id, status and the vendor's error code, never a secret.
 */
export type ErrorClass = 'rate_limited' | 'transient' | 'permanent' | 'auth';

export interface SyncErrorDetails {
  target?: TargetId | 'source';
  userId?: string;
  status?: number;
  /** The vendor's own error code (`user_not_found`, `ClientError`, ...) or undici's (`UND_ERR_SOCKET`). */
  vendorCode?: string;
  retryAfterMs?: number;
  requestId?: string;
  cause?: unknown;
}

export class SyncError extends Error {
  override readonly name: string = 'SyncError';
  readonly target?: TargetId | 'source';
  readonly userId?: string;
  readonly status?: number;
  readonly vendorCode?: string;
  readonly retryAfterMs?: number;
  readonly requestId?: string;

  constructor(
    readonly errorClass: ErrorClass,
    message: string,
    details: SyncErrorDetails = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.target = details.target;
    this.userId = details.userId;
    this.status = details.status;
    this.vendorCode = details.vendorCode;
    this.retryAfterMs = details.retryAfterMs;
    this.requestId = details.requestId;
  }

  /** Stable code for logs, metrics and run records: `E_TRANSIENT`, `E_AUTH`, ... */
  get code(): string {
    return `E_${this.errorClass.toUpperCase()}`;
  }

  get retryable(): boolean {
    return this.errorClass === 'transient' || this.errorClass === 'rate_limited';
  }

  /** A plain object safe to store in Redis and reports. */
  toJSON(): Record<string, unknown> {
    return {
      code: this.code,
      class: this.errorClass,
      message: this.message,
      target: this.target,
      userId: this.userId,
      status: this.status,
      vendorCode: this.vendorCode,
      retryAfterMs: this.retryAfterMs,
      requestId: this.requestId,
    };
  }
}

/** A source record or mapping result that cannot be written: the user's outcome is `rejected`. */
export class RejectedRecordError extends Error {
  override readonly name = 'RejectedRecordError';
  readonly code = 'E_REJECTED';
  constructor(
    readonly userId: string | undefined,
    readonly reason: string,
  ) {
    super(userId === undefined ? `rejected record: ${reason}` : `user ${userId} rejected: ${reason}`);
  }
}

export function isSyncError(e: unknown): e is SyncError {
  return e instanceof SyncError;
}
