#!/usr/bin/env node
// Exit 0 when a Redis answers PING at the URL given (default REDIS_URL), 1 otherwise. Used by .ci/run.
import { Redis } from 'ioredis';

const url = process.argv[2] ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const redis = new Redis(url, {
  lazyConnect: true,
  maxRetriesPerRequest: 0,
  connectTimeout: 1000,
  retryStrategy: () => null,
});
redis.on('error', () => {});
try {
  await redis.connect();
  const pong = await redis.ping();
  console.log(`redis at ${url}: ${pong}`);
  process.exit(0);
} catch (e) {
  console.log(`redis at ${url}: ${e instanceof Error ? e.message : e}`);
  process.exit(1);
}
