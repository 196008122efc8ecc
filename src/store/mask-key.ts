import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { RedisLayout } from './redis-layout.js';

/**
 * Issue 12.7: the per-install key of the fingerprints that masked values carry (src/core/masking.ts).
 * 32 random bytes (hex), created by whichever process needs it first with SET NX, so every process of
 * the install masks a value the same way, run after run. It is a secret: it is never logged, never put
 * in a report, a job or a run record; only the 4 hex characters of each HMAC leave this module's callers.
 * It is never rotated (a new key would make every value of older runs look changed).
 */
export async function loadMaskKey(redis: Redis, layout: RedisLayout): Promise<string> {
  const key = layout.maskKey();
  await redis.set(key, randomBytes(32).toString('hex'), 'NX');
  const value = await redis.get(key);
  if (!value) throw new Error('mask key: Redis did not keep the key just created');
  return value;
}
