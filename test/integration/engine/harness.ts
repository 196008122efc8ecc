import type { Redis } from 'ioredis';
import { loadConfig } from '../../../src/config/load.js';
import type { Config } from '../../../src/config/schema.js';
import { createLogger } from '../../../src/log.js';
import { Engine, type EngineOptions } from '../../../src/queue/engine.js';
import { type Sandbox, type SandboxOptions, startSandbox } from '../../../src/sandbox/index.js';
import { cleanPrefix, keysOf, REDIS_URL, redisClient, testPrefix } from '../../helpers/redis.js';

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

interface SunshineProfileRow {
  identifiers: { type: string; value: string }[];
  attributes: Record<string, unknown>;
  name?: string;
  source: string;
}

const present = (v: string | null | undefined): v is string => typeof v === 'string' && v !== '';

/**
 * Compares what each target holds with what the default mapping (config/mapping.default.yaml) should
 * have written for each source user, from the simulators' own state. Written out by hand on purpose:
 * it must not share code with the connectors. Returns human-readable mismatches (empty = all correct).
 */
export async function mismatches(h: Harness, opts: { unlinked?: Set<string> } = {}): Promise<string[]> {
  const users = await inspect<SourceUserRow[]>(h.sandbox.urls.source, 'users');
  const out: string[] = [];
  const sun = await inspect<{ profiles: SunshineProfileRow[] }>(h.sandbox.urls.sunshine, 'state');
  const byExt = new Map<string, SunshineProfileRow>();
  for (const p of sun.profiles) {
    const ext = p.identifiers.find((i) => i.type === 'external_id');
    if (ext && p.source === 'identity') byExt.set(ext.value, p);
  }
  const zephr = await inspect<{ appId: string; sub: string; profile: Record<string, unknown> }[]>(
    h.sandbox.urls.zephr,
    'profiles',
  );
  const bySub = new Map(zephr.map((z) => [z.sub, z.profile]));
  const prelude = await inspect<{
    apps: Record<string, { profiles: Record<string, Record<string, string>> }>;
  }>(h.sandbox.urls.prelude, 'state');
  const preludeProfiles = prelude.apps[h.env.PRELUDE_APP_ID!]?.profiles ?? {};
  for (const u of users) {
    const p = byExt.get(u.id);
    if (!p) {
      out.push(`sunshine: no profile for ${u.id}`);
    } else {
      const emails = p.identifiers.filter((i) => i.type === 'email').map((i) => i.value);
      const want = present(u.email?.trim()) ? [u.email!.trim().toLowerCase()] : [];
      if (JSON.stringify(emails) !== JSON.stringify(want))
        out.push(`sunshine ${u.id}: emails ${emails} != ${want}`);
      const name = `${u.firstName ?? ''} ${u.lastName ?? ''}`.trim();
      if (name && p.name !== name) out.push(`sunshine ${u.id}: name ${p.name} != ${name}`);
      if ((p.attributes.first_name ?? null) !== (present(u.firstName) ? u.firstName : (u.firstName ?? null)))
        out.push(`sunshine ${u.id}: first_name ${p.attributes.first_name} != ${u.firstName}`);
    }
    const z = bySub.get(u.id);
    if (!z) out.push(`zephr: no profile for ${u.id}`);
    else {
      for (const [k, f] of [
        ['first_name', 'firstName'],
        ['last_name', 'lastName'],
        ['email', 'email'],
      ] as const) {
        if ((z[k] ?? null) !== (u[f] ?? null)) out.push(`zephr ${u.id}: ${k} ${z[k]} != ${u[f]}`);
      }
    }
    const pr = preludeProfiles[u.id];
    if (!pr) {
      if (!opts.unlinked?.has(u.id)) out.push(`prelude: no profile for ${u.id}`);
    } else if (pr.first_name !== (u.firstName ?? pr.first_name) || pr.email !== (u.email ?? pr.email)) {
      out.push(`prelude ${u.id}: ${JSON.stringify(pr)} != ${JSON.stringify(u)}`);
    }
  }
  return out;
}

/** Every value under the prefix as text (strings, hashes, lists, sets, zsets, streams), for secret scans. */
export async function redisText(redis: Redis, prefix: string): Promise<string> {
  const parts: string[] = [];
  for (const key of await keysOf(redis, prefix)) {
    const type = await redis.type(key);
    parts.push(key);
    if (type === 'string') parts.push((await redis.get(key)) ?? '');
    else if (type === 'hash') parts.push(JSON.stringify(await redis.hgetall(key)));
    else if (type === 'list') parts.push(JSON.stringify(await redis.lrange(key, 0, -1)));
    else if (type === 'set') parts.push(JSON.stringify(await redis.smembers(key)));
    else if (type === 'zset') parts.push(JSON.stringify(await redis.zrange(key, '0', '-1')));
    else if (type === 'stream') parts.push(JSON.stringify(await redis.xrange(key, '-', '+')));
  }
  return parts.join('\n');
}
