import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { ConfigError } from '../core/config-error.js';
import { isRedisAuthError, RedisAuthError } from '../store/redis-open.js';

/** The Redis the demo uses: the operator's, or a throwaway one it started (and stops). */
export interface DemoRedis {
  url: string;
  /** True when the demo started this Redis: its data is gone once the demo exits. */
  throwaway: boolean;
  stop(): Promise<void>;
}

/** True when a Redis answers PING at `url` within `timeoutMs`. */
export async function redisAnswers(url: string, timeoutMs = 1_500): Promise<boolean> {
  return (await probeRedis(url, timeoutMs)) === 'ok';
}

/**
 * `ok` when a Redis answers PING at `url` within `timeoutMs`, `auth` when one answers but refuses the
 * credentials (issue 8.4: the demo must say so, not quietly start a throwaway Redis), else `down`.
 */
export async function probeRedis(url: string, timeoutMs = 1_500): Promise<'ok' | 'auth' | 'down'> {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
  });
  // The answer is the result; the error is expected when nothing listens, and is never printed (an
  // ioredis error carries the failed command: AUTH's password).
  let auth = false;
  client.on('error', (err: unknown) => {
    if (isRedisAuthError(err)) auth = true;
  });
  try {
    await client.connect();
    return (await client.ping()) === 'PONG' ? 'ok' : 'down';
  } catch (err) {
    return auth || isRedisAuthError(err) ? 'auth' : 'down';
  } finally {
    client.disconnect();
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

const HOW_TO_GET_REDIS = [
  'the demo needs Redis (BullMQ keeps its queues there). Either:',
  '  - point REDIS_URL at one: REDIS_URL=redis://host:6379 npm run demo',
  '  - start one: docker run -d --name redis -p 6379:6379 redis:7   (then npm run demo)',
  '  - or install redis-server (apt-get install redis-server, brew install redis): the demo then starts',
  '    a throwaway one on a free port by itself',
].join('\n');

/**
 * `REDIS_URL` (default redis://127.0.0.1:6379) when something answers there; otherwise, when
 * `redis-server` is on the PATH, a throwaway one on a free loopback port without persistence
 * (`--save "" --appendonly no`), stopped by `stop()`; otherwise a ConfigError that says how to get one
 * (exit 2).
 */
export async function demoRedis(url: string | undefined): Promise<DemoRedis> {
  const wanted = url ?? 'redis://127.0.0.1:6379';
  const answer = await probeRedis(wanted);
  if (answer === 'ok') return { url: wanted, throwaway: false, stop: async () => undefined };
  if (answer === 'auth') throw new RedisAuthError(wanted);
  const which = spawnSync('redis-server', ['--version'], { stdio: 'ignore' });
  if (which.error || which.status !== 0) {
    throw new ConfigError(
      `no Redis answers at ${redactUrl(wanted)} and redis-server is not on the PATH;\n${HOW_TO_GET_REDIS}`,
    );
  }
  const port = await freePort();
  const child: ChildProcess = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
  const throwawayUrl = `redis://127.0.0.1:${port}`;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  const deadline = Date.now() + 10_000;
  while (!(await redisAnswers(throwawayUrl, 500))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new ConfigError(`redis-server did not start on port ${port};\n${HOW_TO_GET_REDIS}`);
    }
    await sleep(50);
  }
  return { url: throwawayUrl, throwaway: true, stop };
}

/** A Redis URL without its password, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'REDIS_URL';
  }
}
