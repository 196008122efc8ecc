import { isIP } from 'node:net';
import type { z } from 'zod';
import { ConfigError } from '../core/config-error.js';
import { dottedPath, readConfigFile, unknownKeys } from './config-file.js';
import { compileMappings } from './mapping.js';
import { scheduleProblem } from './schedule.js';
import { type Config, configSchema } from './schema.js';

/**
 * The only file that reads the environment. Every variable has one path in the config; an error names
 * the variable (or, for values from the config file, the file and path) and says what to fix.
 */
export const ENV_PATHS: Record<string, string> = {
  REDIS_URL: 'redis.url',
  PROFILE_SYNC_PREFIX: 'redis.prefix',
  REDIS_CLUSTER: 'redis.cluster',
  REDIS_CLUSTER_NODES: 'redis.clusterNodes',
  LOG_LEVEL: 'logLevel',
  PROFILE_SYNC_CONFIG: 'configFile',
  SOURCE_URL: 'source.url',
  SOURCE_USERNAME: 'source.username',
  SOURCE_PASSWORD: 'source.password',
  SOURCE_TOKEN: 'source.token',
  SOURCE_PAGE_SIZE: 'source.pageSize',
  SOURCE_READ_AHEAD: 'source.readAhead',
  SUNSHINE_URL: 'targets.sunshine.url',
  SUNSHINE_EMAIL: 'targets.sunshine.email',
  SUNSHINE_API_TOKEN: 'targets.sunshine.apiToken',
  SUNSHINE_PROFILE_SOURCE: 'targets.sunshine.profileSource',
  SUNSHINE_PROFILE_TYPE: 'targets.sunshine.profileType',
  SUNSHINE_PLAN: 'targets.sunshine.plan',
  SUNSHINE_RATE_LIMIT: 'targets.sunshine.rateLimit',
  SUNSHINE_ON_DELETE: 'targets.sunshine.onDelete',
  SUNSHINE_WRITE_MODE: 'targets.sunshine.writeMode',
  ZEPHR_URL: 'targets.zephr.url',
  ZEPHR_APP_ID: 'targets.zephr.appId',
  ZEPHR_JWT_SECRET: 'targets.zephr.jwt.secret',
  ZEPHR_JWT_PRIVATE_KEY: 'targets.zephr.jwt.privateKey',
  ZEPHR_JWT_KEY_ID: 'targets.zephr.jwt.keyId',
  ZEPHR_JWT_NEXT_PRIVATE_KEY: 'targets.zephr.jwt.nextPrivateKey',
  ZEPHR_JWT_NEXT_KEY_ID: 'targets.zephr.jwt.nextKeyId',
  ZEPHR_JWT_SUBJECT_CLAIM: 'targets.zephr.jwt.subjectClaim',
  ZEPHR_JWT_HEADER: 'targets.zephr.jwt.header',
  ZEPHR_JWT_TTL_SECONDS: 'targets.zephr.jwt.ttlSeconds',
  ZEPHR_RATE_LIMIT: 'targets.zephr.rateLimit',
  ZEPHR_ON_DELETE: 'targets.zephr.onDelete',
  ZEPHR_WRITE_MODE: 'targets.zephr.writeMode',
  PRELUDE_URL: 'targets.prelude.url',
  PRELUDE_APP_ID: 'targets.prelude.appId',
  PRELUDE_API_KEY: 'targets.prelude.apiKey',
  PRELUDE_USER_ID_TEMPLATE: 'targets.prelude.userIdTemplate',
  PRELUDE_LINK_BY: 'targets.prelude.linkBy',
  PRELUDE_CREATE_USERS: 'targets.prelude.createUsers',
  PRELUDE_RATE_LIMIT: 'targets.prelude.rateLimit',
  PRELUDE_ON_DELETE: 'targets.prelude.onDelete',
  HTTP_CONNECT_TIMEOUT_MS: 'http.connectTimeoutMs',
  HTTP_HEADERS_TIMEOUT_MS: 'http.headersTimeoutMs',
  HTTP_BODY_TIMEOUT_MS: 'http.bodyTimeoutMs',
  HTTP_CONNECTIONS: 'http.connections',
  SYNC_SCHEDULE: 'sync.schedule',
  MAX_DELETE_RATE: 'sync.maxDeleteRate',
  MAX_DELETES: 'sync.maxDeletes',
  SYNC_CONCURRENCY: 'sync.concurrency',
  SYNC_BATCH_SIZE: 'sync.batchSize',
  SYNC_ATTEMPTS: 'sync.attempts',
  SYNC_ATTEMPTS_UNKNOWN: 'sync.attemptsUnknown',
  SYNC_BACKOFF_BASE_MS: 'sync.backoffBaseMs',
  SYNC_BACKOFF_MAX_MS: 'sync.backoffMaxMs',
  UNLINKED_RECHECK: 'sync.unlinkedRecheckMs',
  RECORD_PII: 'sync.recordPii',
  RUNS_KEEP: 'sync.runsKeep',
  RUN_ITEMS_MAX: 'sync.runItemsMax',
  RUNS_MAX_AGE: 'sync.runsMaxAgeMs',
  RATE_LIMIT_MARGIN_MS: 'sync.rateLimitMarginMs',
  RATE_LIMIT_MAX_WAIT: 'sync.rateLimitMaxWaitMs',
  OPS_PORT: 'ops.port',
  OPS_HOST: 'ops.host',
  OPS_DASHBOARD_TOKEN: 'ops.dashboardToken',
  OPS_DASHBOARD_READ_ONLY: 'ops.dashboardReadOnly',
  OPS_API_TOKEN: 'ops.apiToken',
  OPS_PUBLIC_URL: 'ops.publicUrl',
  ALERT_WEBHOOK_URL: 'alerts.webhookUrl',
  SHUTDOWN_TIMEOUT_MS: 'sync.shutdownTimeoutMs',
  PROFILE_SYNC_TEST_RATE_WINDOW_MS: 'sync.rateWindowMs',
};

const PATH_ENV = Object.fromEntries(Object.entries(ENV_PATHS).map(([k, v]) => [v, k]));

/** Each target is enabled exactly when its `*_URL` is set. */
const TARGET_URL_ENV = { sunshine: 'SUNSHINE_URL', zephr: 'ZEPHR_URL', prelude: 'PRELUDE_URL' } as const;

type Env = Record<string, string | undefined>;

function setPath(obj: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let cur = obj;
  for (const part of parts.slice(0, -1)) {
    cur[part] ??= {};
    cur = cur[part] as Record<string, unknown>;
  }
  cur[parts.at(-1)!] = value;
}

/** Builds the raw (unvalidated) config object from environment variables. */
export function rawConfigFromEnv(env: Env): Record<string, unknown> {
  const raw: Record<string, unknown> = { redis: {}, source: {}, targets: {}, http: {}, sync: {} };
  for (const [name, path] of Object.entries(ENV_PATHS)) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    const target = Object.entries(TARGET_URL_ENV).find(([t]) => path.startsWith(`targets.${t}.`));
    if (target && !env[target[1]]) continue; // settings of a disabled target are ignored
    setPath(raw, path, value);
  }
  const zephr = (raw.targets as Record<string, Record<string, unknown>>).zephr;
  if (zephr) zephr.jwt ??= {};
  // SOURCE_URL is required; leave it absent so that zod names it.
  return raw;
}

/** Human name for a config path: the env var when there is one, else the dotted path. */
export function describePath(path: PropertyKey[]): string {
  const dotted = path.map(String).join('.');
  return PATH_ENV[dotted] ?? dotted;
}

/**
 * One line per issue, naming the variable. `raw` (what was given) turns zod's "expected string, received
 * undefined" for a value nobody set into what the operator must do: set it.
 */
export function formatIssues(
  issues: z.core.$ZodIssue[],
  where = '',
  raw?: Record<string, unknown>,
): string[] {
  return issues.map((i) => {
    const missing = raw !== undefined && i.code === 'invalid_type' && !hasPath(raw, i.path);
    return `${where}${describePath(i.path)}: ${missing ? requiredMessage(i.path) : i.message}`;
  });
}

function requiredMessage(path: PropertyKey[]): string {
  const target = path[0] === 'targets' ? String(path[1]) : undefined;
  return target ? `required when ${target.toUpperCase()}_URL is set` : 'required';
}

/**
 * Loopback for the plain-http rule: only literal loopback addresses (127.0.0.0/8, ::1) and the name
 * `localhost` itself. `*.localhost` is NOT loopback: such a name is resolved through DNS by the HTTP
 * client, which may answer any address (issue 8.10).
 */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname
    .replace(/^\[|\]$/g, '')
    .replace(/\.$/, '')
    .toLowerCase();
  if (h === 'localhost') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  return isIP(h) === 6 && (h === '::1' || h === '0:0:0:0:0:0:0:1');
}

/** Checks that zod cannot express on one field. */
function crossChecks(config: Config): string[] {
  const problems: string[] = [];
  const urls: [string, string | undefined][] = [
    ['SOURCE_URL', config.source.url],
    ['SUNSHINE_URL', config.targets.sunshine?.url],
    ['ZEPHR_URL', config.targets.zephr?.url],
    ['PRELUDE_URL', config.targets.prelude?.url],
    ['ALERT_WEBHOOK_URL', config.alerts.webhookUrl],
  ];
  for (const [name, value] of urls) {
    if (!value) continue;
    const u = new URL(value);
    if (u.protocol === 'http:' && !isLoopbackHost(u.hostname)) {
      problems.push(
        `${name}: plain http:// is allowed only on loopback; use https:// for ${u.host} (TLS required)`,
      );
    }
  }
  const schedule = scheduleProblem(config.sync.schedule);
  if (schedule) problems.push(schedule);
  const jwt = config.targets.zephr?.jwt;
  if (jwt && Boolean(jwt.secret) === Boolean(jwt.privateKey)) {
    problems.push(
      'ZEPHR_JWT_SECRET / ZEPHR_JWT_PRIVATE_KEY: set exactly one of the two (HS256 secret or PEM key)',
    );
  }
  if (jwt?.nextPrivateKey && !jwt.privateKey) {
    problems.push(
      'ZEPHR_JWT_NEXT_PRIVATE_KEY: needs ZEPHR_JWT_PRIVATE_KEY (RS256/ES256); a shared HS256 secret has no public key to rotate',
    );
  }
  if (jwt?.nextKeyId && !jwt.nextPrivateKey) {
    problems.push('ZEPHR_JWT_NEXT_KEY_ID: set only together with ZEPHR_JWT_NEXT_PRIVATE_KEY');
  }
  if (jwt?.nextKeyId && jwt.nextKeyId === jwt.keyId) {
    problems.push('ZEPHR_JWT_NEXT_KEY_ID: must differ from ZEPHR_JWT_KEY_ID (Zephr finds a key by its kid)');
  }
  if (jwt?.nextPrivateKey && jwt.nextPrivateKey === jwt.privateKey) {
    problems.push('ZEPHR_JWT_NEXT_PRIVATE_KEY: the same key as ZEPHR_JWT_PRIVATE_KEY; give the new key');
  }
  return problems;
}

/**
 * The PROFILE_SYNC_CONFIG file as a raw overlay (src/config/config-file.ts): unknown keys refused, and
 * the settings of a target whose `*_URL` is not set in the environment dropped, as for env variables
 * (a target is enabled exactly when its `*_URL` is set).
 */
function fileOverlay(file: string, env: Env): Record<string, unknown> {
  const raw = readConfigFile(file, env);
  const problems = unknownKeys(raw, configSchema).map(
    (p) =>
      `${file}: ${dottedPath(p)}: unknown key; remove it or fix its spelling (docs/connectors-core.md lists the keys)`,
  );
  const targets = raw.targets;
  if (isPlainObject(targets)) {
    for (const [t, urlEnv] of Object.entries(TARGET_URL_ENV)) {
      const section = targets[t];
      if (isPlainObject(section) && 'url' in section) {
        problems.push(
          `${file}: targets.${t}.url: a target is enabled exactly when ${urlEnv} is set; set ${urlEnv} in the environment instead`,
        );
      }
      if (!env[urlEnv]) delete targets[t];
    }
  }
  if (problems.length) throw new ConfigError(`invalid config file:\n  ${problems.join('\n  ')}`, problems);
  return raw;
}

function hasPath(obj: unknown, path: PropertyKey[]): boolean {
  let cur = obj;
  for (const p of path) {
    if (typeof cur !== 'object' || cur === null || !Object.hasOwn(cur, String(p))) return false;
    cur = (cur as Record<string, unknown>)[String(p)];
  }
  return true;
}

/**
 * The named variables of the environment, for commands that build their own configuration (the demo
 * points every URL at its own sandbox and takes only `REDIS_URL` and a prefix from the operator).
 */
export function readEnv(names: readonly string[], env: Env = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of names) {
    const v = env[n];
    if (v !== undefined && v !== '') out[n] = v;
  }
  return out;
}

/**
 * Reads and validates the configuration: environment variables over the PROFILE_SYNC_CONFIG file (when
 * set) over `overlay`; then the mapping is compiled and checked. Throws ConfigError listing every
 * problem at once, each naming the variable, or the file and dotted path, and the fix.
 */
export function loadConfig(env: Env = process.env, overlay: Record<string, unknown> = {}): Config {
  const file = env.PROFILE_SYNC_CONFIG || undefined;
  const fromFile = file ? fileOverlay(file, env) : {};
  const fromEnv = rawConfigFromEnv(env);
  const raw = deepMerge(deepMerge(overlay, fromFile), fromEnv);
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) =>
      file && !hasPath(fromEnv, i.path) && hasPath(fromFile, i.path)
        ? `${file}: ${dottedPath(i.path)}: ${i.message}`
        : formatIssues([i], '', raw)[0]!,
    );
    throw new ConfigError(`invalid configuration:\n  ${problems.join('\n  ')}`, problems);
  }
  const problems = crossChecks(parsed.data);
  if (problems.length) throw new ConfigError(`invalid configuration:\n  ${problems.join('\n  ')}`, problems);
  compileMappings(parsed.data); // a bad mapping is a ConfigError now, not a rejected user in production
  return parsed.data;
}

/** What a command that only reads Redis (`runs`, `report`, `history`, `links`) needs. */
export const redisConfigSchema = configSchema.pick({ redis: true, logLevel: true });
export type RedisOnlyConfig = z.infer<typeof redisConfigSchema>;

/**
 * The Redis part of the configuration only (`REDIS_URL`, `PROFILE_SYNC_PREFIX`, `LOG_LEVEL`), validated
 * with the same schema pieces and error naming as `loadConfig`: for commands that only read Redis, so
 * an operator can run `profile-sync runs` on a bastion without the source's or targets' credentials.
 */
export function loadRedisConfig(env: Env = process.env): RedisOnlyConfig {
  const raw: Record<string, unknown> = { redis: {} };
  for (const name of [
    'REDIS_URL',
    'REDIS_CLUSTER',
    'REDIS_CLUSTER_NODES',
    'PROFILE_SYNC_PREFIX',
    'LOG_LEVEL',
  ]) {
    const value = env[name];
    if (value !== undefined && value !== '') setPath(raw, ENV_PATHS[name]!, value);
  }
  const parsed = redisConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = formatIssues(parsed.error.issues, '', raw);
    throw new ConfigError(`invalid configuration:\n  ${problems.join('\n  ')}`, problems);
  }
  return parsed.data;
}

export function deepMerge(
  base: Record<string, unknown>,
  over: Record<string, unknown>,
): Record<string, unknown> {
  // No prototype: a key of the config file never reads or shadows Object.prototype.
  const out: Record<string, unknown> = Object.assign(Object.create(null), base);
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] =
      isPlainObject(b) && isPlainObject(v)
        ? deepMerge(b as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
