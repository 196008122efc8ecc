import type { RateLimit } from '../kit/index.js';

/**
 * Zendesk sends `X-Rate-Limit` and `X-Rate-Limit-Remaining` on every answer, not only on its 429. The
 * kit's token bucket answers the 429 itself and does not tell a handler what is left, so the vendor keeps
 * a mirror bucket per credential with the same limit, taking one token per request that reached a
 * handler (each of which took one in the kit's bucket): its `remaining` tracks the kit's to within the
 * requests the kit answered itself (injected faults).
 */
export class RateHeaders {
  private buckets = new Map<string, { tokens: number; at: number }>();
  private current: RateLimit | null = null;

  constructor(
    private readonly limit: () => RateLimit | null,
    private readonly now: () => number = Date.now,
  ) {}

  /** The two headers for a request that reached a handler; none when the simulator is unlimited. */
  take(credential: string): Record<string, string> | undefined {
    const limit = this.limit();
    if (!limit) return undefined;
    if (!this.current || this.current.perMinute !== limit.perMinute || this.current.burst !== limit.burst) {
      this.current = { ...limit };
      this.buckets.clear();
    }
    const now = this.now();
    let b = this.buckets.get(credential);
    if (!b) {
      b = { tokens: limit.burst, at: now };
      this.buckets.set(credential, b);
    } else if (now > b.at) {
      b.tokens = Math.min(limit.burst, b.tokens + ((now - b.at) * limit.perMinute) / 60_000);
      b.at = now;
    }
    b.tokens = Math.max(0, b.tokens - 1);
    return {
      'x-rate-limit': String(limit.perMinute),
      'x-rate-limit-remaining': String(Math.floor(b.tokens)),
    };
  }

  clear(): void {
    this.buckets.clear();
  }
}
