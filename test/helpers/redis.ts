import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A key prefix of this test's own: `pst-<hex>`. Never contains ':' (BullMQ queue names). */
export function testPrefix(label = 'test'): string {
  return `pst-${label}-${randomBytes(4).toString('hex')}`;
}

export function redisClient(url = REDIS_URL): Redis {
  return new Redis(url, { maxRetriesPerRequest: null });
}

/** All keys that belong to a prefix, in either plain (`p:`) or hash-tag (`{p}:`) form. */
export async function keysOf(redis: Redis, prefix: string): Promise<string[]> {
  const found: string[] = [];
  for (const pattern of [`${prefix}*`, `{${prefix}}*`]) {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      found.push(...keys);
    } while (cursor !== '0');
  }
  return found;
}

/** Deletes every key of the prefix. Call in afterEach/afterAll. */
export async function cleanPrefix(redis: Redis, prefix: string): Promise<number> {
  const keys = await keysOf(redis, prefix);
  for (let i = 0; i < keys.length; i += 500) await redis.del(...keys.slice(i, i + 500));
  return keys.length;
}
