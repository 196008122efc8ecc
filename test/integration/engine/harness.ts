import type { Redis } from 'ioredis';
import { loadConfig } from '../../../src/config/load.js';
import type { Config } from '../../../src/config/schema.js';
import { createLogger } from '../../../src/log.js';
import { Engine, type EngineOptions } from '../../../src/queue/engine.js';
import { type Sandbox, type SandboxOptions, startSandbox } from '../../../src/sandbox/index.js';
import { cleanPrefix, REDIS_URL, redisClient, testPrefix } from '../../helpers/redis.js';

/** A sandbox, a config pointing at it under a fresh Redis prefix, and a way to clean both. */
export interface Harness {
  sandbox: Sandbox;
  config: Config;
  prefix: string;
  redis: Redis;
  env: Record<string, string>;
  engine(options?: Partial<EngineOptions>): Promise<Engine>;
  close(): Promise<void>;
}

export async function startHarness(
  options: { sandbox?: SandboxOptions; env?: Record<string, string>; label?: string } = {},
): Promise<Harness> {
  const sandbox = await startSandbox({ port: 0, users: 200, rateLimit: null, ...options.sandbox });
  const prefix = testPrefix(options.label ?? 'engine');
  const env: Record<string, string> = {
    ...sandbox.env,
    REDIS_URL,
    PROFILE_SYNC_PREFIX: prefix,
    LOG_LEVEL: 'silent',
    SYNC_BACKOFF_BASE_MS: '20',
    SYNC_BACKOFF_MAX_MS: '200',
    // Generous limits unless a test is about rate limiting (the defaults, 120-250/min, make minutes).
    SUNSHINE_RATE_LIMIT: '100000',
    ZEPHR_RATE_LIMIT: '100000',
    PRELUDE_RATE_LIMIT: '100000',
    ...options.env,
  };
  const config = loadConfig(env);
  const redis = redisClient();
  const engines: Engine[] = [];
  return {
    sandbox,
    config,
    prefix,
    redis,
    env,
    async engine(opts = {}) {
      const e = await Engine.create({
        config,
        logger: createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
        ...opts,
      });
      engines.push(e);
      return e;
    },
    async close() {
      await Promise.all(engines.map((e) => e.close()));
      await sandbox.close();
      await cleanPrefix(redis, prefix);
      await redis.quit();
    },
  };
}

export async function inspect<T = unknown>(baseUrl: string, path: string): Promise<T> {
  const res = await fetch(`${baseUrl}/__sandbox/${path}`);
  if (!res.ok) throw new Error(`${path}: ${res.status}`);
  return (await res.json()) as T;
}

export async function inspectPost<T = unknown>(
  baseUrl: string,
  path: string,
  body: unknown,
  method = 'POST',
): Promise<T> {
  const res = await fetch(`${baseUrl}/__sandbox/${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  return res.status === 204 ? (undefined as T) : ((await res.json()) as T);
}

export interface SourceUserRow {
  id: string;
  firstName?: string | null;
  lastName?: string | null;
  email?: string | null;
}

/** Write requests (anything but GET) a simulator answered, by route. */
export function writeCount(sandbox: Sandbox, sim: 'sunshine' | 'zephr' | 'prelude'): number {
  const c = sandbox.sims[sim].counters();
  let n = 0;
  for (const [route, byStatus] of Object.entries(c.byRoute)) {
    if (route.startsWith('GET ') || route.includes('/__sandbox')) continue;
    for (const v of Object.values(byStatus)) n += v;
  }
  return n;
}
