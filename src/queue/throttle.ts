import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import type { Throttle } from '../connectors/types.js';

/**
 * An exact, global request-rate limit per target: a sliding-window log in one Redis sorted set.
 *
 * Why not BullMQ's limiter alone: it counts *jobs* per *fixed* window. One job may send two requests
 * (Sunshine GET+PUT on an email change, seed 001; Zephr GET+PUT with `--full`), and a fixed window lets
 * `max` jobs through just before a boundary and `max` more just after, i.e. 2L within one minute. The
 * vendor counts requests in any minute, so every HTTP request waits here first, from every worker
 * process: the log holds the grant time of each request of the last window, and a request is granted
 * only when fewer than L were granted in the window before it.
 *
 * Times come from Redis (`TIME`), not from the workers' clocks, so clock skew between worker hosts
 * cannot let two processes see different windows. The window is widened by `marginMs` (default 1 s):
 * a request reaches the vendor some time after its grant (connection, TLS, queueing in the pool), and
 * the vendor counts arrivals; with L grants per `window + margin`, any vendor window of `window` sees at
 * most L arrivals as long as a request leaves within `margin` of its grant.
 */
const ACQUIRE_LUA = `
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
if redis.call('ZCARD', key) < limit then
  redis.call('ZADD', key, now, ARGV[3])
  redis.call('PEXPIRE', key, window + 1000)
  return {1, now}
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
return {0, tonumber(oldest[2]) + window - now + 1}
`;

export interface SlidingWindowThrottleOptions {
  redis: Redis;
  /** The sorted set (`RedisLayout.throttle(target)`). */
  key: string;
  /** Requests allowed per window, across all processes. */
  limit: number;
  /**
   * The vendor's window. Only tests change it (to prove "never more than L per window" in seconds).
   * @defaultValue 60000
   */
  windowMs?: number;
  /**
   * Added to the window for the delay between a grant and the request's arrival at the vendor.
   * @defaultValue 1000
   */
  marginMs?: number;
  /** Called with each wait, for metrics and logs. */
  onWait?: (ms: number) => void;
}

/** Defined with `numberOfKeys: 1`, so ioredis passes the key count itself. */
interface AcquireCommand {
  psThrottle(key: string, limit: number, window: number, member: string): Promise<[number, number]>;
}

export class SlidingWindowThrottle {
  readonly limit: number;
  readonly windowMs: number;
  readonly marginMs: number;
  private readonly redis: Redis & AcquireCommand;
  private closed = false;

  constructor(private readonly opts: SlidingWindowThrottleOptions) {
    if (!Number.isInteger(opts.limit) || opts.limit < 1)
      throw new Error(`throttle limit must be >= 1, got ${opts.limit}`);
    this.limit = opts.limit;
    this.windowMs = opts.windowMs ?? 60_000;
    this.marginMs = opts.marginMs ?? 1_000;
    const r = opts.redis as Redis & Partial<AcquireCommand>;
    if (typeof r.psThrottle !== 'function')
      opts.redis.defineCommand('psThrottle', { numberOfKeys: 1, lua: ACQUIRE_LUA });
    this.redis = opts.redis as Redis & AcquireCommand;
  }

  /** One attempt: the grant time (Redis clock, ms) or the wait before the next attempt may succeed. */
  async tryAcquire(): Promise<{ granted: true; at: number } | { granted: false; waitMs: number }> {
    const member = `${Date.now()}-${randomBytes(6).toString('hex')}`;
    const [ok, value] = await this.redis.psThrottle(
      this.opts.key,
      this.limit,
      this.windowMs + this.marginMs,
      member,
    );
    return ok === 1 ? { granted: true, at: value } : { granted: false, waitMs: value };
  }

  /** Waits until a request may be sent, then records it. */
  async acquire(signal?: AbortSignal): Promise<number> {
    for (;;) {
      if (this.closed) throw new Error('throttle closed');
      signal?.throwIfAborted();
      const r = await this.tryAcquire();
      if (r.granted) return r.at;
      this.opts.onWait?.(r.waitMs);
      // A little jitter so that waiters from many processes do not all retry in the same millisecond.
      await sleep(r.waitMs + Math.floor(Math.random() * 20), undefined, signal ? { signal } : undefined);
    }
  }

  /** The function connectors call before every request (`ConnectorDeps.throttle`). */
  get throttle(): Throttle {
    return async () => {
      await this.acquire();
    };
  }

  close(): void {
    this.closed = true;
  }
}
