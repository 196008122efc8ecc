import type { Redis } from 'ioredis';
import type { RedisLayout } from './redis-layout.js';

/**
 * Issue 12.2: the short-lived marker `{p}:user-sync:<userKey>` of `POST /users/{id}/sync`. Its value
 * is the run the last request started, or `pending:<nonce>` while that request is creating the run.
 * Every change is a compare-and-set, so two requests (two daemon replicas) for one user never both
 * start a run from the same state.
 */
export const PENDING_PREFIX = 'pending:';

// KEYS[1] the marker; ARGV: the value expected now ('' = absent), the new value ('' = delete), PX.
const CAS_LUA = `
local cur = redis.call('GET', KEYS[1]) or ''
if cur ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) return 1 end
if ARGV[3] == '' then redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL') return 1 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
`;

export class UserSyncRequests {
  constructor(
    private readonly redis: Redis,
    private readonly layout: RedisLayout,
  ) {}

  /** The marker's value for a user (`userKey`), or null. */
  async current(userKey: string): Promise<string | null> {
    return this.redis.get(this.layout.userSyncRequest(userKey));
  }

  /**
   * Sets the marker to `next` if it still holds `expected` (null = absent). `ttlMs` restarts its
   * expiry; without it the expiry is kept. `next` null deletes it. True when it was changed.
   */
  async swap(
    userKey: string,
    expected: string | null,
    next: string | null,
    ttlMs?: number,
  ): Promise<boolean> {
    const r = await this.redis.eval(
      CAS_LUA,
      1,
      this.layout.userSyncRequest(userKey),
      expected ?? '',
      next ?? '',
      ttlMs === undefined ? '' : String(ttlMs),
    );
    return Number(r) === 1;
  }
}
