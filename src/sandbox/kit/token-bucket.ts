import type { RateLimit } from './types.js';

export type TakeResult =
  | { ok: true; limit: number; remaining: number }
  | { ok: false; limit: number; remaining: number; retryAfterSeconds: number };

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * Token buckets, one per credential: each holds at most `burst` tokens and gains `perMinute / 60` a
 * second; a request takes one. An empty bucket says how long until the next token, rounded up to whole
 * seconds as `Retry-After` carries it. O(1) per request.
 */
export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>();
  private readonly perMs: number;

  constructor(
    readonly limit: RateLimit,
    private readonly now: () => number = Date.now,
  ) {
    if (!(limit.perMinute > 0) || !(limit.burst >= 1)) {
      throw new RangeError('a rate limit needs perMinute > 0 and burst >= 1');
    }
    this.perMs = limit.perMinute / 60_000;
  }

  take(credential: string): TakeResult {
    const now = this.now();
    const { burst, perMinute } = this.limit;
    let b = this.buckets.get(credential);
    if (!b) {
      b = { tokens: burst, at: now };
      this.buckets.set(credential, b);
    } else if (now > b.at) {
      b.tokens = Math.min(burst, b.tokens + (now - b.at) * this.perMs);
      b.at = now;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return { ok: true, limit: perMinute, remaining: Math.floor(b.tokens) };
    }
    const waitMs = (1 - b.tokens) / this.perMs;
    return {
      ok: false,
      limit: perMinute,
      remaining: 0,
      retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)),
    };
  }

  clear(): void {
    this.buckets.clear();
  }
}

/**
 * The headers of a 429 in the style Zendesk documents and the source and Zephr simulators copy:
 * `Retry-After` in seconds, `X-Rate-Limit` (per minute) and `X-Rate-Limit-Remaining`.
 */
export function rateLimitHeaders(
  retryAfterSeconds: number,
  limit: number,
  remaining: number,
): Record<string, string> {
  return {
    'retry-after': String(retryAfterSeconds),
    'x-rate-limit': String(limit),
    'x-rate-limit-remaining': String(remaining),
  };
}
