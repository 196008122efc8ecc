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
/**
 * The effective limit, in Lua (shared by both scripts; needs `now`, `limit`, KEYS[2], ARGV[3..4]).
 * Without a cut it is the configured limit. After a cut to `base` it stays there for the cool-down
 * (ARGV[3]), then grows by `step` (10% of `base`) every `stepEvery` (ARGV[4]): additive increase,
 * until the configured limit is reached and the hash is dropped.
 */
const EFFECTIVE_LIMIT = `(function()
  local a = redis.call('HMGET', KEYS[2], 'base', 'at', 'step')
  if not a[1] then return limit end
  local since = now - tonumber(a[2]) - tonumber(ARGV[3])
  if since < 0 then return math.min(limit, tonumber(a[1])) end
  local e = tonumber(a[1]) + tonumber(a[3]) * (1 + math.floor(since / tonumber(ARGV[4])))
  if e >= limit then
    redis.call('DEL', KEYS[2])
    return limit
  end
  return e
end)()`;

/**
 * KEYS: log, adapt hash, pause. ARGV: limit, window, cooldown, stepEvery, member, grants wanted (n).
 * Returns {grants given (0: none, wait), grant time or the wait, effective limit}. More than one grant
 * only while the limit is not adapted, and never beyond the window's budget (issue 11.4).
 */
const ACQUIRE_LUA = `
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local eff = ${EFFECTIVE_LIMIT}
-- Issue 8.5: the target answered 429 with Retry-After; nothing is granted before the wait is over,
-- in any process (PAUSE_LUA sets it).
local paused = tonumber(redis.call('GET', KEYS[3]) or '0')
if paused > now then return {0, paused - now, eff} end
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
if eff < limit and count > 0 then
  -- Adapted after a 429: also pace the grants evenly (one per window / eff). A vendor that refused
  -- a burst (token bucket) takes the same number of requests spread out; the log alone would let
  -- the whole effective budget out at once again.
  local spacing = math.floor(window / eff)
  local newest = tonumber(redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')[2])
  if now - newest < spacing then return {0, newest + spacing - now, eff} end
end
if count < eff then
  local n = 1
  if eff >= limit then n = math.max(1, math.min(tonumber(ARGV[6] or '1'), eff - count)) end
  redis.call('ZADD', key, now, ARGV[5])
  for i = 2, n do redis.call('ZADD', key, now, ARGV[5] .. '.' .. i) end
  redis.call('PEXPIRE', key, window + 1000)
  return {n, now, eff}
end
-- The next grant comes when the (count - eff + 1)-th oldest entry leaves the window.
local nth = redis.call('ZRANGE', key, count - eff, count - eff, 'WITHSCORES')
return {0, tonumber(nth[2]) + window - now + 1, eff}
`;

/**
 * Issue 8.5: a 429's Retry-After, shared by every process. The target's "paused until" (Redis clock,
 * ms) becomes max(existing, now + wait) atomically; ACQUIRE_LUA grants nothing before it.
 * KEYS: pause. ARGV: wait ms. Returns {until, now}.
 */
const PAUSE_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local untilMs = now + tonumber(ARGV[1])
local existing = tonumber(redis.call('GET', KEYS[1]) or '0')
if existing >= untilMs then return {existing, now} end
redis.call('SET', KEYS[1], untilMs, 'PX', tonumber(ARGV[1]) + 1000)
return {untilMs, now}
`;

/**
 * Issue 8.5: the last look before a granted request leaves (after its headers are built): is the
 * target paused now? KEYS: pause. Returns {ms left of the pause (0: none), now}.
 */
const HOLD_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local paused = tonumber(redis.call('GET', KEYS[1]) or '0')
if paused > now then return {paused - now, now} end
return {0, now}
`;

/**
 * AIMD after a 429 (docs/engine.md "Rate limiting"): the vendor refused although the log said there
 * was budget, so `*_RATE_LIMIT` is above what the vendor really allows (or its burst is smaller).
 * Multiplicative decrease: the effective limit becomes half of the rate really granted (half of
 * min(effective limit, requests per window at the recent rate), at least 1), and grants are then
 * paced evenly (ACQUIRE_LUA). The rate is the log's count scaled to a whole window when the log
 * spans less (a run that started 3 s ago and sent 300 requests runs at 6,000 a minute, not 300), the
 * span taken as at least `minGap`. Halving the configured figure would not do: with
 * `ZEPHR_RATE_LIMIT=5000` and 40 requests a minute, 2500 changes nothing. 429s of the same burst
 * (every concurrent job meets one) count once: a second cut within `minGapMs` of the last is ignored. The state (`base`, `at`, `step`) lives in one Redis hash next to
 * the log, so every process uses the same effective limit at once.
 * KEYS: log, adapt hash. ARGV: limit, window, cooldown, stepEvery, minGap.
 * Returns {1 if lowered else 0, effective limit now}.
 */
const DECREASE_LUA = `
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local minGap = tonumber(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local eff = ${EFFECTIVE_LIMIT}
local at = tonumber(redis.call('HGET', KEYS[2], 'at') or '0')
if now - at < minGap then return {0, eff} end
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
local rate = count
if count > 0 then
  local oldest = tonumber(redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2])
  local span = math.max(now - oldest, minGap, 1)
  if span < window then rate = math.floor(count * window / span) end
end
local base = math.max(1, math.floor(math.min(eff, rate) / 2))
local step = math.max(1, math.ceil(base / 10))
redis.call('HSET', KEYS[2], 'base', base, 'at', now, 'step', step)
-- Kept until the limit is fully restored (then it expires by itself), plus a window.
local steps = math.ceil((limit - base) / step)
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[3]) + steps * tonumber(ARGV[4]) + window)
return {1, base}
`;

/**
 * Issue 12.1 (the targets page): a look at a target's throttle that grants nothing. KEYS: log, adapt
 * hash, pause. ARGV: limit, window, cooldown, stepEvery, the span counted as "recent" (ms).
 * Returns {effective limit, paused until (0: none), now, requests granted in the recent span}.
 */
const STATUS_LUA = `
local limit = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local eff = ${EFFECTIVE_LIMIT}
local paused = tonumber(redis.call('GET', KEYS[3]) or '0')
if paused <= now then paused = 0 end
local recent = redis.call('ZCOUNT', KEYS[1], now - tonumber(ARGV[5]), '+inf')
return {eff, paused, now, recent}
`;

export interface ThrottleStatus {
  /** The configured limit (requests per window). */
  limit: number;
  /** The limit in force now: below `limit` for a while after a 429 cut it (AIMD). */
  effectiveLimit: number;
  /** A 429's "paused until" (Redis clock, ms), when the target is paused now. */
  pausedUntil?: number;
  /** Requests granted in the last window. */
  recentRequests: number;
  /** Redis's clock at the look (ms). */
  at: number;
}

/**
 * Reads a target's throttle without taking a grant: what the ops pages show. Same keys and the same
 * effective-limit rule as the throttle itself; `windowMs` is the vendor's window (the requests
 * counted), the adaptive steps use the defaults the engine's throttles use (one window each).
 */
export async function throttleStatus(
  redis: Redis,
  keys: { key: string; adaptKey: string; pauseKey: string },
  limit: number,
  windowMs = 60_000,
): Promise<ThrottleStatus> {
  const r = (await redis.eval(
    STATUS_LUA,
    3,
    keys.key,
    keys.adaptKey,
    keys.pauseKey,
    limit,
    windowMs,
    windowMs,
    windowMs,
    windowMs,
  )) as [number, number, number, number];
  const [eff, paused, at, recent] = r;
  return {
    limit,
    effectiveLimit: eff,
    recentRequests: recent,
    at,
    ...(paused ? { pausedUntil: paused } : {}),
  };
}

export interface SlidingWindowThrottleOptions {
  redis: Redis;
  /** The sorted set (`RedisLayout.throttle(target)`). */
  key: string;
  /** The hash of the adaptive limit (`RedisLayout.throttleAdapt`). */
  adaptKey: string;
  /** The "paused until" of a 429 (`RedisLayout.throttlePause`). */
  pauseKey: string;
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
  /** How the limit adapts after a 429 (`lower`). */
  adaptive?: AdaptiveOptions;
}

/** Defined with their `numberOfKeys`, so ioredis passes the key count itself. */
interface ThrottleCommands {
  psThrottleAcquire(
    key: string,
    adapt: string,
    pause: string,
    limit: number,
    window: number,
    cooldown: number,
    stepEvery: number,
    member: string,
    wanted: number,
  ): Promise<[number, number, number]>;
  psThrottleCut(
    key: string,
    adapt: string,
    limit: number,
    window: number,
    cooldown: number,
    stepEvery: number,
    minGap: number,
  ): Promise<[number, number]>;
  psThrottlePause(pause: string, waitMs: number): Promise<[number, number]>;
  psThrottleHold(pause: string): Promise<[number, number]>;
}

/**
 * AIMD figures. With the production window (60 s) and a vendor that answers 429 while 40 requests
 * went out in the last minute: the limit drops to 20 a minute at once (every process), stays there
 * for one window (60 s), then grows by 2 a minute (10% of 20): 40 again ten minutes later, the
 * configured figure eventually if the vendor takes it. Further 429s cut again, from the current rate.
 */
export interface AdaptiveOptions {
  /** How long a cut limit holds before it grows again. @defaultValue the window */
  cooldownMs?: number;
  /** One additive step (10% of the cut level) per this long. @defaultValue the window */
  stepEveryMs?: number;
  /** 429s closer than this to the last cut are the same burst: no second cut. @defaultValue 1000 */
  minGapMs?: number;
}

/**
 * Issue 11.4: with a high limit one call takes several grants (one per 1,000 of the limit, at most 64;
 * below 2,000: one, as before). The spares serve this process's next requests for at most RESERVE_MS,
 * never past a 429 it met or a cut: another process's 429 pause is kept here from at most RESERVE_MS
 * after it was set. An unused spare expires: never a request beyond the limit, at most one per 1,000
 * of the limit unsent. Issue 11: 64 (was 16): a Redis call costs a worker 70-120 µs of CPU (bench VM).
 */
const RESERVE_MAX = 64;
const RESERVE_PER = 1000;
const RESERVE_MS = 100;

export class SlidingWindowThrottle {
  readonly limit: number;
  readonly windowMs: number;
  readonly marginMs: number;
  private readonly adapt: Required<AdaptiveOptions>;
  private readonly adaptKey: string;
  private readonly pauseKey: string;
  private readonly redis: Redis & ThrottleCommands;
  private closed = false;
  /** Grants asked per acquire call (RESERVE_MAX, RESERVE_PER; 1 when the margin is below RESERVE_MS). */
  private readonly wanted: number;
  /** Spare grants of the last call: their time (Redis clock), how many, usable until (performance.now()). */
  private spare = { at: 0, left: 0, until: 0 };
  /** The call taking grants now: concurrent acquires wait for its spares instead of calling too. */
  private inFlight: Promise<unknown> | undefined;

  constructor(private readonly opts: SlidingWindowThrottleOptions) {
    if (!Number.isInteger(opts.limit) || opts.limit < 1)
      throw new Error(`throttle limit must be >= 1, got ${opts.limit}`);
    this.limit = opts.limit;
    this.windowMs = opts.windowMs ?? 60_000;
    this.marginMs = opts.marginMs ?? 1_000;
    this.adapt = {
      cooldownMs: opts.adaptive?.cooldownMs ?? this.windowMs,
      stepEveryMs: opts.adaptive?.stepEveryMs ?? this.windowMs,
      minGapMs: opts.adaptive?.minGapMs ?? 1_000,
    };
    this.adaptKey = opts.adaptKey;
    this.pauseKey = opts.pauseKey;
    this.wanted =
      this.marginMs >= RESERVE_MS
        ? Math.max(1, Math.min(RESERVE_MAX, Math.floor(this.limit / RESERVE_PER)))
        : 1;
    const r = opts.redis as Redis & Partial<ThrottleCommands>;
    if (typeof r.psThrottleAcquire !== 'function') {
      opts.redis.defineCommand('psThrottleAcquire', { numberOfKeys: 3, lua: ACQUIRE_LUA });
      opts.redis.defineCommand('psThrottleCut', { numberOfKeys: 2, lua: DECREASE_LUA });
      opts.redis.defineCommand('psThrottlePause', { numberOfKeys: 1, lua: PAUSE_LUA });
      opts.redis.defineCommand('psThrottleHold', { numberOfKeys: 1, lua: HOLD_LUA });
    }
    this.redis = opts.redis as Redis & ThrottleCommands;
  }

  /**
   * One attempt: the grant time (Redis clock, ms) or the wait before the next attempt may succeed,
   * with the effective limit (below `limit` for a while after a 429, see `lower`).
   */
  async tryAcquire(): Promise<
    { granted: true; at: number; limit: number } | { granted: false; waitMs: number; limit: number }
  > {
    if (this.spareReady()) {
      this.spare.left--;
      return { granted: true, at: this.spare.at, limit: this.limit };
    }
    const member = `${Date.now()}-${randomBytes(6).toString('hex')}`;
    const [n, value, limit] = await this.redis.psThrottleAcquire(
      this.opts.key,
      this.adaptKey,
      this.pauseKey,
      this.limit,
      this.windowMs + this.marginMs,
      this.adapt.cooldownMs,
      this.adapt.stepEveryMs,
      member,
      this.wanted,
    );
    if (n > 1) this.spare = { at: value, left: n - 1, until: performance.now() + RESERVE_MS };
    return n >= 1 ? { granted: true, at: value, limit } : { granted: false, waitMs: value, limit };
  }

  private spareReady = (): boolean => this.spare.left > 0 && performance.now() < this.spare.until;

  /** Drops the spare grants (a 429 or a cut: every later request asks Redis again). */
  private dropSpare(): void {
    this.spare = { at: 0, left: 0, until: 0 };
  }

  /**
   * The vendor answered 429: halve the effective limit for every process (AIMD, see DECREASE_LUA).
   * `lowered` is false when a cut of the same burst came first; `limit` is the effective limit now.
   */
  async lower(): Promise<{ lowered: boolean; limit: number }> {
    this.dropSpare();
    const [lowered, limit] = await this.redis.psThrottleCut(
      this.opts.key,
      this.adaptKey,
      this.limit,
      this.windowMs + this.marginMs,
      this.adapt.cooldownMs,
      this.adapt.stepEveryMs,
      this.adapt.minGapMs,
    );
    return { lowered: lowered === 1, limit };
  }

  /**
   * The target answered 429 with this wait (already capped by RATE_LIMIT_MAX_WAIT): no request is
   * granted, in any process, before it is over (issue 8.5). Extends an existing pause, never shortens
   * it. Returns when the pause ends and when it was set (Redis clock, ms).
   */
  async pause(waitMs: number): Promise<{ until: number; at: number }> {
    this.dropSpare();
    const [until, at] = await this.redis.psThrottlePause(this.pauseKey, Math.max(0, Math.ceil(waitMs)));
    return { until, at };
  }

  /** How long the target stays paused by a 429 (0: not paused), and the Redis time of the look. */
  async pausedFor(): Promise<{ waitMs: number; at: number }> {
    const [waitMs, at] = await this.redis.psThrottleHold(this.pauseKey);
    return { waitMs, at };
  }

  /**
   * One more look before a request leaves after a long wait for its grant, once its headers are
   * rebuilt (issue 8.5): a pause set since the grant is waited out. While paused, waits for the pause
   * and takes a new grant (the first one is spent: conservative). Returns the look that let it go.
   */
  async hold(signal?: AbortSignal): Promise<{ waitMs: number; at: number }> {
    for (;;) {
      const r = await this.pausedFor();
      if (r.waitMs <= 0) return r;
      this.opts.onWait?.(r.waitMs);
      await this.acquire(signal);
    }
  }

  /** Waits until a request may be sent, then records it. */
  async acquire(signal?: AbortSignal): Promise<number> {
    for (;;) {
      if (this.closed) throw new Error('throttle closed');
      signal?.throwIfAborted();
      // While another acquire asks Redis for several grants, wait for its spares (one call, not many).
      while (this.inFlight && !this.spareReady()) await this.inFlight;
      const asks = this.wanted > 1 && !this.spareReady();
      const p = this.tryAcquire();
      if (asks) {
        const done = p.catch(() => undefined);
        this.inFlight = done;
        void done.then(() => {
          if (this.inFlight === done) this.inFlight = undefined;
        });
      }
      const r = await p;
      if (r.granted) return r.at;
      this.opts.onWait?.(r.waitMs);
      // A little jitter so that waiters from many processes do not all retry in the same millisecond.
      await sleep(r.waitMs + Math.floor(Math.random() * 20), undefined, signal ? { signal } : undefined);
    }
  }

  /** The function connectors call before every request (`ConnectorDeps.throttle`). */
  get throttle(): Throttle {
    const fn: Throttle = () => this.acquire();
    fn.pause = (ms) => this.pause(ms);
    fn.hold = () => this.hold();
    return fn;
  }

  close(): void {
    this.closed = true;
  }
}
