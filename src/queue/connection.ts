import { Redis } from 'ioredis';

/**
 * A Redis connection for BullMQ and our stores. `maxRetriesPerRequest: null` is what BullMQ requires
 * for its blocking commands (a Worker refuses a connection without it); every Queue and Worker gets
 * one explicitly, there is no global client.
 */
export function createRedisConnection(url: string): Redis {
  return new Redis(url, { maxRetriesPerRequest: null, enableReadyCheck: true });
}
