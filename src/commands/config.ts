import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { compileMappings } from '../config/mapping.js';
import type { Config } from '../config/schema.js';
import {
  DEFAULT_UNPUBLISHED_RATE_LIMIT,
  enabledTargets,
  SUNSHINE_PLAN_LIMITS,
  targetRateLimit,
  targetWriteMode,
} from '../config/schema.js';
import { closeConnectors, createSourceConnector, createTargetConnectors } from '../connectors/registry.js';
import type { TargetConnector } from '../connectors/types.js';
import { isSyncError } from '../core/errors.js';
import { maskBody, maskPath } from '../core/masking.js';
import type { TargetId } from '../core/targets.js';
import { TARGET_IDS } from '../core/targets.js';
import type { FieldMap, PlannedRequest, SourceUser } from '../core/types.js';
import { createLogger } from '../log.js';
import { createRedisConnection } from '../store/connection.js';
import { createLinkStore } from '../store/links.js';
import { whenRedisReady } from '../store/redis-open.js';

/**
 * `profile-sync config check [--user ID] [--json]`: loads the configuration exactly as the worker does
 * (exit 2 with the ConfigError message when it is bad), prints it with every secret masked, the enabled
 * targets and their rate limits, and for one user the FieldMap each target's mapping produces and the
 * requests `plan()` says a create would send. Sends nothing to a target unless `--connect` is given.
 */

/** Keys whose values are secrets wherever they appear in the config. */
const SECRET_KEYS = new Set([
  'password',
  'token',
  'apiToken',
  'apiKey',
  'secret',
  'privateKey',
  'nextPrivateKey',
  'dashboardToken',
  'webhookUrl', // ALERT_WEBHOOK_URL: a Slack webhook URL carries its token in the path
]);

/** `****` + at most the last 2 characters (only for values long enough that 2 characters reveal nothing useful). */
export function maskSecret(key: string, value: unknown): string {
  if (/privateKey$/i.test(key) || typeof value !== 'string') return '[set]';
  return value.length >= 12 ? `****${value.slice(-2)}` : '****';
}

/** A URL's password (redis://:pw@host) masked; everything else kept. */
function maskUrl(value: string): string {
  try {
    const u = new URL(value);
    if (!u.password) return value;
    u.password = '****';
    return u.toString();
  } catch {
    return value;
  }
}

/** A deep copy of the config with every secret masked. */
export function maskConfig(value: unknown, key = ''): unknown {
  if (Array.isArray(value)) return value.map((v) => maskConfig(v));
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [
        k,
        SECRET_KEYS.has(k) && v !== undefined ? maskSecret(k, v) : maskConfig(v, k),
      ]),
    );
  }
  if (typeof value === 'string' && /url$/i.test(key)) return maskUrl(value);
  return value;
}

/**
 * The built-in sample: realistic and awkward on purpose (mixed-case email, non-ASCII name, apostrophe,
 * an id that needs percent-encoding), so the printed paths show the encoding every connector applies.
 */
export const SAMPLE_USER: SourceUser = {
  id: 'sample:1042/zoë',
  firstName: 'Zoë',
  lastName: "O'Brien",
  email: 'Zoe.OBrien@Example.com',
};

export interface TargetReport {
  target: TargetId;
  enabled: boolean;
  rateLimitPerMinute?: number;
  /** Where the limit comes from. */
  rateLimitSource?: string;
  /** The effective mapping rules (config/mapping.default.yaml plus the config file's overrides). */
  mapping?: Record<string, unknown>;
  fields?: FieldMap;
  plan?: PlannedRequest[];
  /**
   * The write mode (issue 11.1) and what a write costs by `plan()`: a create, and an update that
   * changes every field (for Sunshine an identifier change, its dearest update).
   */
  writeMode?: { mode: string; variable?: string; create: number; update: number };
  /** Why no payload: mapping rejected the user, connector could not be built, ... */
  error?: string;
  /** `--connect`: `ok` or the classified error. */
  connection?: string;
  /** Prelude (issue 10): how this user is (or would be) linked to a Prelude user. */
  linking?: string;
}

export interface CheckReport {
  config: unknown;
  user: { source: 'sample' | 'source'; masked: boolean; value: SourceUser };
  targets: TargetReport[];
}

function rateLimitSource(config: Config, target: TargetId): string {
  if (target === 'sunshine') {
    const s = config.targets.sunshine;
    return s?.rateLimit !== undefined
      ? 'SUNSHINE_RATE_LIMIT'
      : `SUNSHINE_PLAN ${s?.plan ?? 'team'} (Zendesk publishes ${SUNSHINE_PLAN_LIMITS[s?.plan ?? 'team']}/min)`;
  }
  const name = target === 'zephr' ? 'ZEPHR_RATE_LIMIT' : 'PRELUDE_RATE_LIMIT';
  return config.targets[target]?.rateLimit === DEFAULT_UNPUBLISHED_RATE_LIMIT
    ? `default: the vendor publishes none; raise with ${name}`
    : name;
}

export interface BuildReportOptions {
  user?: SourceUser;
  userSource?: 'sample' | 'source';
  /** Mask PII in the user, FieldMaps and plans (default: for a real user only). */
  maskPii?: boolean;
  /** Run each connector's check(). */
  connect?: boolean;
  /** `--user`: the user's entry in the Prelude link table (issue 10), or why it could not be read. */
  preludeLink?: { id?: string; how?: string; at?: number; error?: string };
}

/** How `config check --user` says the user is or would be linked to a Prelude user (issue 10). */
function describeLinking(config: Config, user: SourceUser, link: BuildReportOptions['preludeLink']): string {
  const p = config.targets.prelude!;
  const by = `PRELUDE_LINK_BY=${p.linkBy}`;
  if (link?.id) {
    const when = link.at ? ` at ${new Date(link.at).toISOString()}` : '';
    return `linked to ${link.id} (${link.how ?? 'import'}${when}); the PATCH goes there (${by})`;
  }
  const table = link?.error
    ? `link table not read (${link.error})`
    : link
      ? 'no link in the table'
      : 'sample user';
  if (p.linkBy === 'template')
    return `${table}; ${by}: PRELUDE_USER_ID_TEMPLATE ${JSON.stringify(p.userIdTemplate)} gives ${JSON.stringify(p.userIdTemplate.replaceAll('{id}', user.id))}`;
  if (p.linkBy === 'table') return `${table}; ${by}: only imported links are used, so: unlinked, no request`;
  const create = p.createUsers
    ? 'not found: created (PRELUDE_CREATE_USERS=true)'
    : 'not found: unlinked, no PATCH, looked up again after UNLINKED_RECHECK';
  return `${table}; ${by}: looked up with batch_lookup (one request per 100 users); found: linked and patched; ${create}`;
}

/** Everything `config check` prints, as data (the `--json` output). */
export async function buildReport(config: Config, options: BuildReportOptions = {}): Promise<CheckReport> {
  const user = options.user ?? SAMPLE_USER;
  const userSource = options.userSource ?? 'sample';
  const mask = options.maskPii ?? userSource === 'source';
  const mappings = compileMappings(config);
  const logger = createLogger({ level: 'silent' });
  const enabled = new Set(enabledTargets(config));
  const connectors: Partial<Record<TargetId, TargetConnector>> = createTargetConnectors(
    config,
    { logger },
    { mappings },
  );
  try {
    const targets: TargetReport[] = [];
    for (const target of TARGET_IDS) {
      if (!enabled.has(target)) {
        targets.push({ target, enabled: false });
        continue;
      }
      const report: TargetReport = {
        target,
        enabled: true,
        rateLimitPerMinute: targetRateLimit(config, target),
        rateLimitSource: rateLimitSource(config, target),
        mapping: { ...mappings[target].spec },
      };
      const connector = connectors[target]!;
      try {
        const next = connector.map(user);
        const linkedId = target === 'prelude' ? options.preludeLink?.id : undefined;
        const linked = linkedId ? { linkedId } : {};
        const plan = connector.plan({ userId: user.id, user, previous: null, next, ...linked });
        const older = Object.fromEntries(Object.entries(next).map(([k, v]) => [k, `${String(v)}-old`]));
        const update = connector.plan({ userId: user.id, user, previous: older, next, ...linked });
        // Per write: a Prelude batch_lookup serves 100 users (the linking line says so), not one write.
        const perWrite = (p: typeof plan) => p.filter((r) => !r.path.endsWith('/batch_lookup')).length;
        report.writeMode = {
          ...targetWriteMode(config, target),
          create: perWrite(plan),
          update: perWrite(update),
        };
        if (target === 'prelude') report.linking = describeLinking(config, user, options.preludeLink);
        report.fields = mask ? (maskBody(next) as FieldMap) : next;
        report.plan = mask
          ? plan.map((p) => ({ ...p, path: maskPath(p.path), body: maskBody(p.body) }))
          : plan;
      } catch (e) {
        report.error = e instanceof Error ? e.message : String(e);
      }
      if (options.connect) {
        try {
          await connector.check();
          report.connection = 'ok';
        } catch (e) {
          report.connection = isSyncError(e) ? `${e.code}: ${e.message}` : String(e);
        }
      }
      targets.push(report);
    }
    return {
      config: maskConfig(config),
      user: { source: userSource, masked: mask, value: mask ? (maskBody(user) as SourceUser) : user },
      targets,
    };
  } finally {
    await closeConnectors(connectors);
  }
}

function indent(text: string, by: string): string {
  return text
    .split('\n')
    .map((l) => by + l)
    .join('\n');
}

/** `{from: email, transforms: [trim]}` as `email | trim`, `{template}` quoted, `{const}` as JSON. */
function describeRule(rule: unknown): string {
  const r = rule as { from?: string; template?: string; const?: unknown; transforms?: string[] };
  const base =
    r.from !== undefined
      ? r.from
      : r.template !== undefined
        ? `template ${JSON.stringify(r.template)}`
        : `const ${JSON.stringify(r.const)}`;
  return [base, ...(r.transforms ?? [])].join(' | ');
}

/** The human-readable form. */
export function formatReport(report: CheckReport): string {
  const lines: string[] = [];
  lines.push('Configuration (secrets masked):');
  lines.push(indent(JSON.stringify(report.config, null, 2), '  '));
  lines.push('');
  lines.push('Targets:');
  for (const t of report.targets) {
    lines.push(
      t.enabled
        ? `  ${t.target.padEnd(9)} enabled   ${t.rateLimitPerMinute} requests/min  [${t.rateLimitSource}]`
        : `  ${t.target.padEnd(9)} disabled  (set ${t.target.toUpperCase()}_URL to enable)`,
    );
  }
  const u = report.user;
  lines.push('');
  lines.push(
    `Sample user (${u.source === 'sample' ? 'built-in sample' : 'from the source'}${u.masked ? ', PII masked' : ''}):`,
  );
  lines.push(`  ${JSON.stringify(u.value)}`);
  for (const t of report.targets.filter((x) => x.enabled)) {
    lines.push('');
    lines.push(`${t.target}:`);
    if (t.connection) lines.push(`  connection: ${t.connection}`);
    if (t.error) {
      lines.push(`  cannot map this user: ${t.error}`);
      continue;
    }
    lines.push('  mapping:');
    for (const [k, rule] of Object.entries(t.mapping ?? {})) lines.push(`    ${k} <- ${describeRule(rule)}`);
    lines.push('  fields:');
    for (const [k, v] of Object.entries(t.fields ?? {})) lines.push(`    ${k} = ${JSON.stringify(v)}`);
    const w = t.writeMode;
    if (w) {
      const n = (k: number) => `${k} request${k === 1 ? '' : 's'}`;
      lines.push(
        `  write mode: ${w.mode}${w.variable ? ` (${w.variable})` : ''}: a create ${n(w.create)}, an update of every field ${n(w.update)}`,
      );
    }
    if (t.linking) lines.push(`  linking: ${t.linking}`);
    lines.push('  requests for a create (plan):');
    for (const p of t.plan ?? []) {
      lines.push(`    ${p.method} ${p.path}${p.note ? `    # ${p.note}` : ''}`);
      if (p.body !== undefined) lines.push(`      ${JSON.stringify(p.body)}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

export function registerConfig(program: Command): void {
  const config = program.command('config').description('Inspect the configuration');
  config
    .command('check')
    .description(
      'Load and validate the configuration, print it with secrets masked, and show the payloads and requests for one user',
    )
    .option('--user <id>', 'fetch this user from the source instead of the built-in sample')
    .option('--json', 'print JSON')
    .option('--connect', "also run each target's cheap authenticated check request")
    .option('--show-pii', 'do not mask names and emails of a --user fetched from the source')
    .action(async (opts: { user?: string; json?: boolean; connect?: boolean; showPii?: boolean }) => {
      const cfg = loadConfig(); // ConfigError -> exit 2 (src/cli.ts)
      let user: SourceUser | undefined;
      if (opts.user !== undefined) {
        const fetched = await fetchSourceUser(cfg, opts.user);
        if (!fetched.ok) {
          process.stderr.write(`profile-sync: config check: ${fetched.reason}\n`);
          process.exitCode = 1;
          return;
        }
        user = fetched.user;
      }
      const preludeLink = user && cfg.targets.prelude ? await readLink(cfg, user.id) : undefined;
      const report = await buildReport(cfg, {
        user,
        userSource: user ? 'source' : 'sample',
        maskPii: user ? !opts.showPii : false,
        connect: opts.connect,
        ...(preludeLink ? { preludeLink } : {}),
      });
      process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
      if (report.targets.some((t) => t.error || (t.connection && t.connection !== 'ok')))
        process.exitCode = 1;
    });
}

/** The user's Prelude link and how it was found; config check still works when Redis cannot be read. */
async function readLink(config: Config, id: string): Promise<NonNullable<BuildReportOptions['preludeLink']>> {
  const redis = createRedisConnection({ ...config.redis, maxRetriesPerRequest: 1, lazyConnect: true });
  redis.on('error', () => undefined); // reported below as the link table's error
  try {
    await whenRedisReady(redis, config.redis.url);
    const store = createLinkStore(redis, config.redis.prefix);
    const linked = await store.get(id);
    const info = linked ? (await store.info([id])).get(id) : undefined;
    return { ...(linked ? { id: linked } : {}), ...(info ? { how: info.how, at: info.at } : {}) };
  } catch (e) {
    return { error: e instanceof Error ? e.message.split('\n')[0]!.slice(0, 120) : String(e) };
  } finally {
    redis.disconnect();
  }
}

/** `GET /user/{id}/profile` from the source, validated like any scanned record. */
async function fetchSourceUser(
  config: Config,
  id: string,
): Promise<{ ok: true; user: SourceUser } | { ok: false; reason: string }> {
  const source = createSourceConnector(config, { logger: createLogger({ level: 'silent' }) });
  try {
    const record = await source.getUser(id);
    if (record === null)
      return { ok: false, reason: `user ${JSON.stringify(id)} not found in the source (404)` };
    if (!record.ok) return { ok: false, reason: `user ${JSON.stringify(id)} is rejected: ${record.reason}` };
    return { ok: true, user: record.user };
  } catch (e) {
    return { ok: false, reason: isSyncError(e) ? `${e.code}: ${e.message}` : String(e) };
  } finally {
    await source.close();
  }
}
