import type { Redis } from 'ioredis';
import { JOBS } from '../../../jobs/index.js';
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
        jobs: JOBS,
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
    // Reads are not writes: GETs, and Prelude's batch_lookup (a POST that only reads).
    if (route.startsWith('GET ') || route.includes('/__sandbox') || route.includes('batch_lookup')) continue;
    for (const v of Object.values(byStatus)) n += v;
  }
  return n;
}

interface SunshineProfileRow {
  identifiers: { type: string; value: string }[];
  attributes: Record<string, unknown>;
  name?: string;
  source: string;
  type?: string;
}

/** The three source fields, by the key each target gives them (README, "The default mapping"). */
const FIELDS = [
  ['firstName', 'first_name'],
  ['lastName', 'last_name'],
  ['email', 'email'],
] as const;

/** A source value as the default mapping's `from` reads it: null and absent are both "no value". */
const sourceValue = (v: string | null | undefined): string | undefined =>
  typeof v === 'string' ? v : undefined;

/**
 * What profile-sync must have written for one source user, per target, written out by hand from the
 * README's default-mapping table and config/mapping.default.yaml (never from src/connectors or
 * src/config/mapping.ts: a shared bug would pass its own check). A key absent from an expectation
 * must be absent from the target.
 */
export function expectedPayloads(
  u: SourceUserRow,
  preludeCleared: ReadonlySet<string> = new Set(),
): {
  sunshine: {
    name: string;
    identifiers: { external_id: string[]; email: string[] };
    attributes: Record<string, string>;
  };
  zephr: Record<string, string>;
  prelude: Record<string, string>;
} {
  // Sunshine: name = "{firstName} {lastName}" trimmed, omitted when empty, in which case Zendesk
  // derives one (seed 003's table): the email identifier, else "User " + external id.
  const email = sourceValue(u.email)?.trim().toLowerCase();
  const emails = email ? [email] : [];
  const template = `${sourceValue(u.firstName) ?? ''} ${sourceValue(u.lastName) ?? ''}`.trim();
  const name = template !== '' ? template : email ? email : `User ${u.id}`;
  const attributes: Record<string, string> = {};
  const plain: Record<string, string> = {};
  for (const [from, key] of FIELDS) {
    const v = sourceValue(u[from]);
    if (v === undefined) continue;
    if (from !== 'email') attributes[key] = v;
    plain[key] = v;
  }
  // Prelude has no delete: a key written before and gone from the source now must hold "".
  const prelude: Record<string, string> = { ...plain };
  for (const key of preludeCleared) if (!(key in prelude)) prelude[key] = '';
  return {
    sunshine: { name, identifiers: { external_id: [u.id], email: emails }, attributes },
    zephr: { ...plain },
    prelude,
  };
}

/** The managed keys of a target document: what is there of first_name, last_name and email. */
function managed(doc: Record<string, unknown>, keys: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of keys) if (Object.hasOwn(doc, k)) out[k] = doc[k];
  return out;
}

/** JSON with sorted keys, for comparing objects whatever their key order. */
function canonical(v: unknown): string {
  if (typeof v !== 'object' || v === null) return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
    .join(',')}}`;
}

/**
 * Per sandbox, the source users as they were at the last comparison: a Prelude key present then and
 * gone now must have been cleared with "" (the API has no delete). A test that changes a field to
 * null must therefore compare once before, or pass `preludeCleared`.
 */
const lastChecked = new WeakMap<object, Map<string, SourceUserRow>>();

/**
 * Compares what each target holds with what the default mapping (config/mapping.default.yaml) should
 * have written for each source user, from the simulators' own state: the whole managed payload per
 * target (Sunshine name, identifiers external_id and email, attributes first_name and last_name; Zephr
 * and Prelude first_name, last_name, email), absent where the field must be omitted, "" where Prelude
 * must have cleared it. Data other systems keep beside it is not compared. Written out by hand on
 * purpose: it must not share code with the connectors. Returns human-readable mismatches (empty = all
 * correct).
 */
export async function mismatches(
  h: Pick<Harness, 'sandbox' | 'env'>,
  opts: {
    unlinked?: Set<string>;
    preludeCleared?: Map<string, Set<string>>;
    /** source id -> Prelude `usr_` id, for users linked by email (default: by external_id). */
    preludeLinks?: Map<string, string>;
  } = {},
): Promise<string[]> {
  const users = await inspect<SourceUserRow[]>(h.sandbox.urls.source, 'users');
  const out: string[] = [];
  const sun = await inspect<{ profiles: SunshineProfileRow[] }>(h.sandbox.urls.sunshine, 'state');
  const source = h.env.SUNSHINE_PROFILE_SOURCE ?? 'identity';
  const type = h.env.SUNSHINE_PROFILE_TYPE ?? 'user';
  const byExt = new Map<string, SunshineProfileRow[]>();
  for (const p of sun.profiles) {
    if (p.source !== source || (p.type !== undefined && p.type !== type)) continue;
    for (const ext of p.identifiers.filter((i) => i.type === 'external_id')) {
      byExt.set(ext.value, [...(byExt.get(ext.value) ?? []), p]);
    }
  }
  const zephr = await inspect<{ appId: string; sub: string; profile: Record<string, unknown> }[]>(
    h.sandbox.urls.zephr,
    'profiles',
  );
  const bySub = new Map(
    zephr.filter((z) => z.appId === (h.env.ZEPHR_APP_ID ?? z.appId)).map((z) => [z.sub, z.profile]),
  );
  const prelude = await inspect<{
    apps: Record<string, { profiles: Record<string, Record<string, string>> }>;
  }>(h.sandbox.urls.prelude, 'state');
  const preludeProfiles = prelude.apps[h.env.PRELUDE_APP_ID!]?.profiles ?? {};
  // The sandbox's default `usr` ids (the real service's): a profile lives in the Prelude user whose
  // external_id is the source id (or, given, the one the link table names).
  const app = h.env.PRELUDE_APP_ID ? `?app=${encodeURIComponent(h.env.PRELUDE_APP_ID)}` : '';
  const preludeUsers = (
    await inspect<{ users: { id: string; external_id?: string; profile: Record<string, string> }[] }>(
      h.sandbox.urls.prelude,
      `users${app}`,
    ).catch(() => ({ users: [] }))
  ).users;
  const usrProfiles = new Map<string, Record<string, string>>();
  const byUsr = new Map(preludeUsers.map((u) => [u.id, u.profile]));
  for (const u of preludeUsers) if (u.external_id && u.profile) usrProfiles.set(u.external_id, u.profile);
  for (const [sourceId, usr] of opts.preludeLinks ?? []) {
    const profile = byUsr.get(usr);
    if (profile) usrProfiles.set(sourceId, profile);
  }
  const before = lastChecked.get(h.sandbox);
  const keys = FIELDS.map(([, k]) => k);

  for (const u of users) {
    const cleared = new Set(opts.preludeCleared?.get(u.id) ?? []);
    const old = before?.get(u.id);
    if (old) for (const [from, key] of FIELDS) if (sourceValue(old[from]) !== undefined) cleared.add(key);
    const want = expectedPayloads(u, cleared);

    const found = byExt.get(u.id) ?? [];
    if (found.length !== 1) {
      out.push(`sunshine: ${found.length} profiles for ${u.id} (want 1)`);
    } else {
      const p = found[0]!;
      const got = {
        name: p.name,
        identifiers: {
          external_id: p.identifiers.filter((i) => i.type === 'external_id').map((i) => i.value),
          email: p.identifiers.filter((i) => i.type === 'email').map((i) => i.value),
        },
        attributes: managed(p.attributes, ['first_name', 'last_name']),
      };
      if (canonical(got) !== canonical(want.sunshine))
        out.push(`sunshine ${u.id}: ${canonical(got)} != ${canonical(want.sunshine)}`);
    }

    const z = bySub.get(u.id);
    if (!z) out.push(`zephr: no profile for ${u.id}`);
    else if (canonical(managed(z, keys)) !== canonical(want.zephr))
      out.push(`zephr ${u.id}: ${canonical(managed(z, keys))} != ${canonical(want.zephr)}`);

    const usrProfile = usrProfiles.get(u.id);
    const pr =
      preludeProfiles[u.id] ?? (usrProfile && Object.keys(usrProfile).length ? usrProfile : undefined);
    if (opts.unlinked?.has(u.id)) {
      if (pr) out.push(`prelude ${u.id}: unlinked, yet a profile ${canonical(pr)}`);
    } else if (!pr) {
      out.push(`prelude: no profile for ${u.id}`);
    } else if (canonical(managed(pr, keys)) !== canonical(want.prelude)) {
      out.push(`prelude ${u.id}: ${canonical(managed(pr, keys))} != ${canonical(want.prelude)}`);
    }
  }
  // Keep what was written before, so that a later comparison expects "" where Prelude had a value.
  const merged = new Map(before ?? []);
  for (const u of users) {
    const old = merged.get(u.id);
    const row: SourceUserRow = { ...u };
    if (old) for (const [from] of FIELDS) if (sourceValue(row[from]) === undefined) row[from] = old[from];
    merged.set(u.id, row);
  }
  lastChecked.set(h.sandbox, merged);
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
