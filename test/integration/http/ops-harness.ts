import type { Redis } from 'ioredis';
import { JOBS } from '../../../jobs/index.js';
import { loadConfig } from '../../../src/config/load.js';
import type { Config } from '../../../src/config/schema.js';
import { type OpsServer, type OpsServerOptions, startOpsServer } from '../../../src/http/server.js';
import { createLogger, type Logger } from '../../../src/log.js';
import { Engine } from '../../../src/queue/engine.js';
import { type Sandbox, startSandbox } from '../../../src/sandbox/index.js';
import { cleanPrefix, REDIS_URL, redisClient, testPrefix } from '../../helpers/redis.js';

/** A sandbox, an engine on it under a fresh Redis prefix, and ops servers to close afterwards. */
export interface OpsHarness {
  sandbox: Sandbox;
  config: Config;
  env: Record<string, string>;
  prefix: string;
  redis: Redis;
  logger: Logger;
  engine(): Promise<Engine>;
  server(engine: Engine, opts?: Partial<OpsServerOptions>): Promise<OpsServer>;
  /** Every response body and header seen through `get`, for the no-secret check. */
  seen: string[];
  get(url: string, init?: RequestInit): Promise<{ status: number; headers: Headers; text: string }>;
  close(): Promise<void>;
}

export async function startOpsHarness(
  options: { label?: string; env?: Record<string, string>; users?: number; redisUrl?: string } = {},
): Promise<OpsHarness> {
  const sandbox = await startSandbox({ port: 0, users: options.users ?? 30, rateLimit: null });
  const prefix = testPrefix(options.label ?? 'ops');
  const env: Record<string, string> = {
    ...sandbox.env,
    REDIS_URL: options.redisUrl ?? REDIS_URL,
    PROFILE_SYNC_PREFIX: prefix,
    LOG_LEVEL: 'silent',
    SYNC_BACKOFF_BASE_MS: '20',
    SYNC_BACKOFF_MAX_MS: '200',
    SUNSHINE_RATE_LIMIT: '100000',
    ZEPHR_RATE_LIMIT: '100000',
    PRELUDE_RATE_LIMIT: '100000',
    ...options.env,
  };
  const config = loadConfig(env);
  const redis = redisClient(env.REDIS_URL);
  redis.on('error', () => undefined); // the outage test kills its Redis: reconnect errors are expected
  const logger = createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  const engines: Engine[] = [];
  const servers: OpsServer[] = [];
  const seen: string[] = [];
  return {
    sandbox,
    config,
    env,
    prefix,
    redis,
    logger,
    seen,
    async engine() {
      const e = await Engine.create({ jobs: JOBS, config, logger });
      engines.push(e);
      return e;
    },
    async server(engine, opts = {}) {
      const s = await startOpsServer({
        engine,
        host: '127.0.0.1',
        port: 0,
        logger,
        version: '0.0.0-test',
        ...opts,
      });
      servers.push(s);
      return s;
    },
    async get(url, init) {
      const res = await fetch(url, init);
      const text = await res.text();
      seen.push(text, JSON.stringify([...res.headers.entries()]));
      return { status: res.status, headers: res.headers, text };
    },
    async close() {
      await Promise.all(servers.map((s) => s.close()));
      await Promise.all(engines.map((e) => e.close()));
      await sandbox.close();
      await cleanPrefix(redis, prefix);
      await redis.quit();
    },
  };
}

/** The value of one sample in Prometheus text, or undefined when the series is absent. */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries(
      (m[2] ?? '')
        .split(',')
        .filter(Boolean)
        .map((kv) => {
          const eq = kv.indexOf('=');
          return [kv.slice(0, eq), JSON.parse(kv.slice(eq + 1)) as string];
        }),
    );
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return undefined;
}

/** Polls `check` until it returns a value (not undefined) or the deadline passes. */
export async function until<T>(
  check: () => Promise<T | undefined>,
  what: string,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A TCP port nothing listens on right now (for a throwaway redis-server). */
export { freePort } from '../../helpers/own-redis.js';
