import { z } from 'zod';
import { TARGET_IDS, type TargetId } from '../core/targets.js';
import { mappingSchema } from './mapping-schema.js';

/**
 * The effective configuration of profile-sync, validated once at start-up.
 * Environment variable names are fixed by the issues (see README "Configuration"); src/config/load.ts
 * is the only file that reads `process.env`.
 */

/**
 * Zendesk publishes its Profiles API limits per plan, in requests per minute
 * (seed 003 and Zendesk's rate-limit page): Team and Growth 250, Professional 500, Enterprise 700,
 * Enterprise Plus 1000.
 */
export const SUNSHINE_PLAN_LIMITS = {
  team: 250,
  growth: 250,
  professional: 500,
  enterprise: 700,
  'enterprise-plus': 1000,
} as const;
export type SunshinePlan = keyof typeof SUNSHINE_PLAN_LIMITS;

/**
 * Zephr and Prelude publish no rate limit. 120 requests per minute (2/s) is our conservative default:
 * a million-user backfill then takes ~6 days per target, so operators raise it once their vendor
 * confirms a higher figure; starting low never gets a tenant throttled or flagged.
 */
export const DEFAULT_UNPUBLISHED_RATE_LIMIT = 120;

const url = z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' });
const positiveInt = z.coerce.number().int().positive();
const onDeleteClear = z.enum(['ignore', 'clear']);
/** A duration: `90s`, `30m`, `24h`, `7d`, `500ms`, or a plain number of seconds; parsed to ms. */
const duration = z.preprocess(
  (v) => {
    if (typeof v !== 'string') return v;
    const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(v);
    if (!m) return v;
    const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 's') as 'ms'];
    return Math.round(Number(m[1]) * unit);
  },
  z.number({ error: 'must be a duration like 90s, 30m, 24h or 7d' }).int().min(0),
);
const booleanish = z.preprocess(
  (v) => (typeof v === 'string' ? ['1', 'true', 'yes', 'on'].includes(v.trim().toLowerCase()) : v),
  z.boolean(),
);

export const httpSchema = z.object({
  /** @defaultValue 5000 */
  connectTimeoutMs: positiveInt.default(5_000),
  /** @defaultValue 15000 */
  headersTimeoutMs: positiveInt.default(15_000),
  /** @defaultValue 15000 */
  bodyTimeoutMs: positiveInt.default(15_000),
  /** Connections per origin. @defaultValue 16 */
  connections: positiveInt.default(16),
});

export const sourceSchema = z
  .object({
    url,
    username: z.string().min(1).optional(),
    password: z.string().min(1).optional(),
    token: z.string().min(1).optional(),
    /** Users per `GET /user` page. @defaultValue 500 */
    pageSize: positiveInt.max(10_000).default(500),
    /**
     * Pages the scan requests ahead of the one it reads (0: none, each page asked for when the one
     * before is read). @defaultValue 4
     */
    readAhead: z.coerce.number().int().min(0).max(16).default(4),
  })
  .superRefine((s, ctx) => {
    if (s.token && (s.username || s.password)) {
      ctx.addIssue({
        code: 'custom',
        message: 'set SOURCE_TOKEN or SOURCE_USERNAME/SOURCE_PASSWORD, not both',
      });
    }
    if (!s.token && Boolean(s.username) !== Boolean(s.password)) {
      ctx.addIssue({ code: 'custom', message: 'SOURCE_USERNAME and SOURCE_PASSWORD go together' });
    }
  });

export const sunshineSchema = z.object({
  url,
  email: z.string().min(1, 'SUNSHINE_EMAIL is required when SUNSHINE_URL is set'),
  apiToken: z.string().min(1, 'SUNSHINE_API_TOKEN is required when SUNSHINE_URL is set'),
  /** Seed 003: source and type are at most 40 characters; the source `zendesk` is reserved. */
  profileSource: z
    .string()
    .min(1)
    .max(40)
    .refine(
      (s) => s.toLowerCase() !== 'zendesk',
      "the profile source 'zendesk' is reserved by Zendesk (seed 003)",
    )
    .default('identity'),
  profileType: z.string().min(1).max(40).default('user'),
  plan: z.enum(Object.keys(SUNSHINE_PLAN_LIMITS) as [SunshinePlan, ...SunshinePlan[]]).default('team'),
  /** Requests per minute; defaults to the plan's published limit. */
  rateLimit: positiveInt.optional(),
  /** @defaultValue 'ignore' */
  onDelete: z.enum(['ignore', 'delete']).default('ignore'),
  /**
   * `SUNSHINE_WRITE_MODE` (issue 11.1, docs/targets.md "Write modes"). `merge`: read the profile before
   * the first write and before a replace, and keep other systems' identifiers and attributes. `owned`:
   * the `{profileSource}:{profileType}` profiles are written only by profile-sync, so a create and a
   * replace are one PUT built from what was last written. @defaultValue 'merge'
   */
  writeMode: z.enum(['merge', 'owned']).default('merge'),
});

export const zephrSchema = z.object({
  url,
  appId: z
    .string()
    .min(1, 'ZEPHR_APP_ID is required when ZEPHR_URL is set')
    .refine((s) => !s.startsWith('_restricted'), "a Zephr appId may not start with '_restricted' (seed 000)"),
  jwt: z.object({
    secret: z.string().min(1).optional(),
    privateKey: z.string().min(1).optional(),
    keyId: z.string().min(1).optional(),
    /** Issue 12.6: a second key, published in the JWKS beside the current one (never signs). */
    nextPrivateKey: z.string().min(1).optional(),
    nextKeyId: z.string().min(1).optional(),
    /** Claim that carries the source user id. @defaultValue 'sub' */
    subjectClaim: z.string().min(1).default('sub'),
    /** @defaultValue 'authorization' (sent as `Authorization: Bearer`) */
    header: z.enum(['authorization', 'x-zephr-jwt']).default('authorization'),
    /** Seed 000 leaves it open; the issue caps it at 5 minutes. @defaultValue 300 */
    ttlSeconds: positiveInt.max(300).default(300),
  }),
  rateLimit: positiveInt.default(DEFAULT_UNPUBLISHED_RATE_LIMIT),
  onDelete: onDeleteClear.default('ignore'),
  /**
   * `ZEPHR_WRITE_MODE` (issue 11.1, docs/targets.md "Write modes"). `owned`: the extended profile under
   * `appId` is profile-sync's document, a write is one PUT. `merge`: GET, merge, PUT, for an app id
   * other systems also write. @defaultValue 'owned'
   */
  writeMode: z.enum(['owned', 'merge']).default('owned'),
});

export const preludeSchema = z.object({
  url,
  appId: z.string().min(1, 'PRELUDE_APP_ID is required when PRELUDE_URL is set'),
  apiKey: z.string().min(1, 'PRELUDE_API_KEY is required when PRELUDE_URL is set'),
  /** `{id}` is replaced by the source user id. @defaultValue '{id}' */
  userIdTemplate: z.string().min(1).default('{id}'),
  /**
   * How a source user finds their Prelude user (issue 10, docs/targets.md "Linking users to Prelude"):
   * `external_id` (batch_lookup by our id), `email`, `external_id,email` (both, in that order),
   * `template` (`userIdTemplate`, no lookup) or `table` (only `links import`). @defaultValue 'external_id'
   */
  linkBy: z.enum(['external_id', 'email', 'external_id,email', 'template', 'table']).default('external_id'),
  /** Create a Prelude user (a login identity) for a user no lookup found. @defaultValue false */
  createUsers: booleanish.default(false),
  rateLimit: positiveInt.default(DEFAULT_UNPUBLISHED_RATE_LIMIT),
  onDelete: onDeleteClear.default('ignore'),
});

/**
 * The operations HTTP surface the daemon starts (src/http/server.ts, docs/operations.md): `/healthz`,
 * `/readyz`, `/metrics`, `/dashboard`, `/api/runs`.
 */
export const opsSchema = z.object({
  /**
   * `OPS_PORT`; 0 disables the server. 9464 is the port OpenTelemetry's Prometheus exporter uses, so
   * scrape configs and network policies that already allow it need no change. @defaultValue 9464
   */
  port: z.coerce.number().int().min(0).max(65_535).default(9_464),
  /**
   * `OPS_HOST`. Loopback by default: the dashboard shows job payloads (masked) and run records, so
   * exposing it is a decision; a container sets `OPS_HOST=0.0.0.0` so that the kubelet and Prometheus
   * reach it on the pod IP. @defaultValue '127.0.0.1'
   */
  host: z.string().min(1).default('127.0.0.1'),
  /**
   * `OPS_DASHBOARD_TOKEN`: when set, `/dashboard` and `/api/*` need `Authorization: Bearer <token>` or
   * HTTP Basic with the token as password. A secret (redacted in logs). @defaultValue unset (open)
   */
  dashboardToken: z.string().min(16, 'use at least 16 characters (e.g. `openssl rand -hex 24`)').optional(),
  /** `OPS_DASHBOARD_READ_ONLY`: the dashboard cannot retry, clean, pause or remove jobs. @defaultValue true */
  dashboardReadOnly: booleanish.default(true),
  /**
   * `OPS_API_TOKEN` (issue 12.2): `POST /users/{id}/sync` needs `Authorization: Bearer <token>`; without
   * it the route is not served (503). Separate from the dashboard token: a webhook caller may enqueue,
   * not read run records. A secret (redacted in logs). @defaultValue unset (route refused)
   */
  apiToken: z.string().min(16, 'use at least 16 characters (e.g. `openssl rand -hex 24`)').optional(),
  /**
   * `OPS_PUBLIC_URL`: the ops surface's address as an operator's browser reaches it (`https://ops.example.com`);
   * alerts link to `<OPS_PUBLIC_URL>/runs/<runId>`. @defaultValue unset (alerts carry no link)
   */
  publicUrl: url.optional(),
});

/** Issue 12.3: the operations webhook (src/queue/run-alerts.ts). */
export const alertsSchema = z.object({
  /**
   * `ALERT_WEBHOOK_URL`: where alerts are POSTed (Slack-compatible JSON). https://, or http:// on
   * loopback only. A secret (a Slack webhook URL carries its token in the path): redacted, never
   * logged beyond its host. @defaultValue unset (no alerts)
   */
  webhookUrl: url.optional(),
});

export const configSchema = z.object({
  redis: z.object({
    url: z
      .string()
      .regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL')
      .default('redis://127.0.0.1:6379'),
    /** Key prefix for every Redis key profile-sync writes. @defaultValue 'profile-sync' */
    prefix: z
      .string()
      .min(1)
      .regex(/^[^:\s]+$/, 'may not contain ":" or spaces (BullMQ queue names may not contain ":")')
      .default('profile-sync'),
    /**
     * `REDIS_CLUSTER`: connect to a Redis Cluster; `REDIS_URL` then names one seed node (its
     * credentials and TLS apply to every node). Every key is under one hash tag, so it is one slot.
     * @defaultValue false
     */
    cluster: booleanish.default(false),
    /**
     * `REDIS_CLUSTER_NODES`: more seed nodes, `host:port` comma-separated, tried with `REDIS_URL`'s
     * node. @defaultValue unset
     */
    clusterNodes: z
      .string()
      .regex(/^\s*[^\s,:]+:\d+\s*(,\s*[^\s,:]+:\d+\s*)*$/, 'must be host:port[,host:port...]')
      .optional(),
  }),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Path of the optional mapping/config file (YAML or JSON). */
  configFile: z.string().optional(),
  source: sourceSchema,
  targets: z.object({
    sunshine: sunshineSchema.optional(),
    zephr: zephrSchema.optional(),
    prelude: preludeSchema.optional(),
  }),
  http: httpSchema,
  /** @defaultValue every field's default */
  ops: opsSchema.prefault({}),
  /** @defaultValue no alerts */
  alerts: alertsSchema.prefault({}),
  /**
   * Mapping overrides from the config file's `mapping:` section (defaults: config/mapping.default.yaml;
   * compiled and checked by src/config/mapping.ts). @defaultValue {}
   */
  mapping: mappingSchema,
  sync: z.object({
    /** Cron expression for the daemon's reconcile. @defaultValue '*\/15 * * * *' */
    schedule: z.string().default('*/15 * * * *'),
    /** Largest share of known users one run may remove. @defaultValue 0.05 */
    maxDeleteRate: z.coerce.number().min(0).max(1).default(0.05),
    /** @defaultValue 1000 */
    maxDeletes: z.coerce.number().int().min(0).default(1000),
    /** Sync jobs one worker process runs at once per target (`SYNC_CONCURRENCY`). @defaultValue 4 */
    concurrency: positiveInt.max(256).default(4),
    /**
     * Changed users of one scan chunk a backfill or scheduled run puts in one sync job per target
     * (`SYNC_BATCH_SIZE`, issue 11.4): the job runs them one after the other, so BullMQ's work per job
     * is paid once per batch; 1 gives every user its own job. @defaultValue 16
     */
    batchSize: positiveInt.max(500).default(16),
    /**
     * Job attempts for transient errors (5xx, timeouts, resets), backoff with full jitter between them
     * (`SYNC_ATTEMPTS`). @defaultValue 8
     */
    attempts: positiveInt.max(50).default(8),
    /** Job attempts for unclassified errors (bugs, Redis hiccups) (`SYNC_ATTEMPTS_UNKNOWN`). @defaultValue 3 */
    attemptsUnknown: positiveInt.max(50).default(3),
    /** First backoff ceiling in ms; doubles per attempt (`SYNC_BACKOFF_BASE_MS`). @defaultValue 2000 */
    backoffBaseMs: positiveInt.default(2_000),
    /** Largest backoff ceiling in ms (`SYNC_BACKOFF_MAX_MS`). @defaultValue 300000 */
    backoffMaxMs: positiveInt.default(300_000),
    /** How long a Prelude `user_not_found` is trusted before probing again (`UNLINKED_RECHECK`). @defaultValue 24h */
    unlinkedRecheckMs: duration.default(24 * 3600_000),
    /** Store diffs unmasked in run records (`RECORD_PII`). @defaultValue false */
    recordPii: booleanish.default(false),
    /** Run records kept (`RUNS_KEEP`). @defaultValue 200 */
    runsKeep: positiveInt.default(200),
    /**
     * Items (diffs, errors) kept per target per run (`RUN_ITEMS_MAX`, issue 11.3), failures and
     * rejections first; the rest are counted as left out (counters stay exact). 0 keeps none.
     * @defaultValue 10000
     */
    runItemsMax: z.coerce.number().int().min(0).max(10_000_000).default(10_000),
    /** Run records older than this are deleted (`RUNS_MAX_AGE`). @defaultValue 30d */
    runsMaxAgeMs: duration.default(30 * 24 * 3600_000),
    /**
     * Added to each target's rate-limit window for the delay between a grant and the request's arrival
     * (`RATE_LIMIT_MARGIN_MS`, see src/queue/throttle.ts). @defaultValue 1000
     */
    rateLimitMarginMs: z.coerce.number().int().min(0).max(60_000).default(1_000),
    /**
     * The longest a 429's Retry-After may pause a target (`RATE_LIMIT_MAX_WAIT`, issue 8.3). A longer
     * ask pauses the target for this long only and stops it for the run: its remaining jobs fail into
     * the dead letters (`rate_limited`) for `retry-failed`, and the run ends. @defaultValue 15m
     */
    rateLimitMaxWaitMs: duration.default(15 * 60_000),
    /**
     * How long the daemon waits for in-flight jobs on SIGTERM/SIGINT before handing them back to the
     * queue (`SHUTDOWN_TIMEOUT_MS`, docs/daemon.md). 20 s leaves the hand-back 10 s inside Kubernetes'
     * default 30 s grace period; a SIGKILL before the hand-back delays those jobs by a lock duration.
     * @defaultValue 20000
     */
    shutdownTimeoutMs: z.coerce.number().int().min(0).max(3_600_000).default(20_000),
    /**
     * TEST ONLY (`PROFILE_SYNC_TEST_RATE_WINDOW_MS`): the window every `*_RATE_LIMIT` counts in, instead
     * of the vendors' minute, so a reliability test proves "never more than L per window" in seconds.
     * Never set it in production: the vendors count per minute. @defaultValue 60000
     */
    rateWindowMs: positiveInt.default(60_000),
  }),
});

export type Config = z.infer<typeof configSchema>;
export type SourceConfig = z.infer<typeof sourceSchema>;
export type SunshineConfig = z.infer<typeof sunshineSchema>;
export type ZephrConfig = z.infer<typeof zephrSchema>;
export type PreludeConfig = z.infer<typeof preludeSchema>;
export type HttpConfig = z.infer<typeof httpSchema>;
export type OpsConfig = z.infer<typeof opsSchema>;
export type AlertsConfig = z.infer<typeof alertsSchema>;

/** Requests per minute the engine allows a target. */
export function targetRateLimit(config: Config, target: TargetId): number {
  const t = config.targets;
  switch (target) {
    case 'sunshine':
      return t.sunshine?.rateLimit ?? SUNSHINE_PLAN_LIMITS[t.sunshine?.plan ?? 'team'];
    case 'zephr':
      return t.zephr?.rateLimit ?? DEFAULT_UNPUBLISHED_RATE_LIMIT;
    case 'prelude':
      return t.prelude?.rateLimit ?? DEFAULT_UNPUBLISHED_RATE_LIMIT;
  }
}

/**
 * How a target writes (issue 11.1, docs/targets.md "Write modes"): `owned` / `merge` from
 * `ZEPHR_WRITE_MODE` / `SUNSHINE_WRITE_MODE`; Prelude has one way, `patch` (PATCH merges, nothing read).
 */
export function targetWriteMode(config: Config, target: TargetId): { mode: string; variable?: string } {
  switch (target) {
    case 'sunshine':
      return { mode: config.targets.sunshine?.writeMode ?? 'merge', variable: 'SUNSHINE_WRITE_MODE' };
    case 'zephr':
      return { mode: config.targets.zephr?.writeMode ?? 'owned', variable: 'ZEPHR_WRITE_MODE' };
    case 'prelude':
      return { mode: 'patch' };
  }
}

export function enabledTargets(config: Config): TargetId[] {
  return TARGET_IDS.filter((t) => config.targets[t] !== undefined);
}
