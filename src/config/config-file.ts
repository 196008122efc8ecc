import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { isScalar, LineCounter, parseDocument, visit } from 'yaml';
import type { z } from 'zod';
import { ConfigError } from '../core/config-error.js';

/**
 * The optional config file named by PROFILE_SYNC_CONFIG: YAML or JSON (JSON is read by the YAML 1.2
 * parser, which accepts it, so both report errors the same way). It holds the `mapping:` overrides and
 * any key of the config schema; string values may reference environment variables as `${NAME}`
 * (`$${` for a literal `${`). The environment is passed in: src/config/load.ts stays the only reader of
 * process.env. Errors name the file, the dotted path and the fix, and never quote a value (a value may
 * be a secret).
 */

type Env = Record<string, string | undefined>;

const ENV_REF = /\$\$\{|\$\{([^}]*)\}/g;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Keys refused anywhere in the file: they would reach `Object.prototype` (or shadow it) in any plain
 * object built from the file's keys.
 */
export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * How many alias expansions the file may make (yaml's `maxAliasCount`): a config has no use for more,
 * and an alias bomb (aliases of aliases) expands exponentially.
 */
export const MAX_ALIAS_COUNT = 100;

/**
 * The variables a mapping value may not reference (issue 8.10): a mapping value is written to the
 * targets and shown by `config check`, so a secret would leave through it. Secret: every variable
 * the config schema treats as a secret (passwords, tokens, API keys, JWT secrets/keys, and the Redis
 * URLs, which may carry a password), and any other variable whose name says it holds one.
 */
export const SECRET_ENV: ReadonlySet<string> = new Set([
  'SOURCE_PASSWORD',
  'SOURCE_TOKEN',
  'SUNSHINE_API_TOKEN',
  'ZEPHR_JWT_SECRET',
  'ZEPHR_JWT_PRIVATE_KEY',
  'PRELUDE_API_KEY',
  'OPS_DASHBOARD_TOKEN',
  'REDIS_URL',
  'REDIS_CLUSTER_NODES',
]);
const SECRET_NAME = /PASSWORD|PASSWD|PASSPHRASE|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL/i;

export function isSecretEnv(name: string): boolean {
  return SECRET_ENV.has(name) || SECRET_NAME.test(name);
}

/** `a.b["c.d"][0]` */
export function dottedPath(path: readonly PropertyKey[]): string {
  return path
    .map((p, i) =>
      typeof p === 'number'
        ? `[${p}]`
        : /^[A-Za-z0-9_-]+$/.test(String(p))
          ? `${i ? '.' : ''}${String(p)}`
          : `[${JSON.stringify(String(p))}]`,
    )
    .join('');
}

/** Replaces `${NAME}` in every string value; collects a problem per missing or malformed reference. */
export function substituteEnv(
  value: unknown,
  env: Env,
  file: string,
  problems: string[],
  path: PropertyKey[] = [],
): unknown {
  if (typeof value === 'string') {
    return value.replace(ENV_REF, (m, name: string | undefined) => {
      if (name === undefined) return '${'; // `$${` escapes a literal `${`
      if (!ENV_NAME.test(name)) {
        problems.push(
          `${file}: ${dottedPath(path)}: \${${name}} is not a valid variable reference; write \${NAME} (letters, digits, _) or $\${ for a literal`,
        );
        return m;
      }
      if (path[0] === 'mapping' && isSecretEnv(name)) {
        problems.push(
          `${file}: ${dottedPath(path)}: \${${name}} is a secret; a mapping value is written to the targets and shown by config check, so it may reference only non-secret variables`,
        );
        return m;
      }
      const v = Object.hasOwn(env, name) ? env[name] : undefined;
      if (v === undefined) {
        problems.push(
          `${file}: ${dottedPath(path)}: environment variable ${name} is not set; export it or remove the reference`,
        );
        return m;
      }
      return v;
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => substituteEnv(v, env, file, problems, [...path, i]));
  if (typeof value === 'object' && value !== null) {
    // Built without a prototype: a key of the file never reads or shadows Object.prototype.
    const out: Record<string, unknown> = Object.create(null);
    for (const [k, v] of Object.entries(value)) out[k] = substituteEnv(v, env, file, problems, [...path, k]);
    return out;
  }
  return value;
}

function unwrap(schema: z.ZodType): z.ZodType {
  let s = schema as unknown as { _zod: { def: { type: string; innerType?: z.ZodType } } };
  while (
    ['optional', 'default', 'nullable', 'prefault', 'readonly'].includes(s._zod.def.type) &&
    s._zod.def.innerType
  ) {
    s = s._zod.def.innerType as unknown as typeof s;
  }
  return s as unknown as z.ZodType;
}

/**
 * Keys of the file that the schema does not know (zod objects strip them silently, so a typo such as
 * `onDelet` would otherwise be ignored). Records (`mapping.<target>`) are not walked: their keys are data.
 */
export function unknownKeys(value: unknown, schema: z.ZodType, path: PropertyKey[] = []): PropertyKey[][] {
  const s = unwrap(schema) as unknown as {
    _zod: { def: { type: string; shape?: Record<string, z.ZodType> } };
  };
  if (s._zod.def.type !== 'object' || !s._zod.def.shape) return [];
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return [];
  const shape = s._zod.def.shape;
  const out: PropertyKey[][] = [];
  for (const [k, v] of Object.entries(value)) {
    const child = Object.hasOwn(shape, k) ? shape[k] : undefined;
    if (!child) out.push([...path, k]);
    else out.push(...unknownKeys(v, child, [...path, k]));
  }
  return out;
}

/**
 * Duplicate keys (one Set per map: linear) and keys that would reach Object.prototype, with their
 * place in the file (never their value).
 */
function keyProblems(
  doc: ReturnType<typeof parseDocument>,
  file: string,
  at: (offset: number | undefined) => string,
): string[] {
  const problems: string[] = [];
  visit(doc, {
    Map(_, map) {
      const seen = new Set<unknown>();
      for (const pair of map.items) {
        const key = pair.key;
        if (!isScalar(key)) continue; // a complex key cannot reach a config path
        const name = key.value;
        if (typeof name === 'string' && FORBIDDEN_KEYS.has(name)) {
          problems.push(
            `${file}: key ${JSON.stringify(name)} at ${at(key.range?.[0])} is not allowed (it would reach Object.prototype); remove it`,
          );
        }
        const id = typeof name === 'string' || typeof name === 'number' ? `${typeof name}:${name}` : name;
        if (seen.has(id)) {
          problems.push(`${file}: duplicate key at ${at(key.range?.[0])} (DUPLICATE_KEY); fix the file`);
        }
        seen.add(id);
      }
    },
  });
  return problems;
}

/** Reads and parses the file: a mapping (object) at the top level, env references substituted. */
export function readConfigFile(file: string, env: Env): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'read error';
    throw new ConfigError(
      `PROFILE_SYNC_CONFIG: cannot read ${file} (${code}); fix the path or unset PROFILE_SYNC_CONFIG`,
    );
  }
  const kind = extname(file).toLowerCase() === '.json' ? 'JSON' : 'YAML';
  const lineCounter = new LineCounter();
  // prettyErrors off: a pretty error quotes the offending line, which may hold a secret.
  // uniqueKeys off: yaml compares each key with every earlier key of its map (quadratic: 80,000 keys
  // took a minute); keyProblems checks duplicates with one Set per map instead.
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: false, lineCounter });
  const at = (offset: number | undefined) => {
    const pos = lineCounter.linePos(offset ?? 0);
    return `line ${pos.line}, column ${pos.col}`;
  };
  if (doc.errors.length) {
    const problems = doc.errors.map(
      (err) => `${file}: ${kind} syntax error at ${at(err.pos[0])} (${err.code}); fix the file`,
    );
    throw new ConfigError(`invalid config file:\n  ${problems.join('\n  ')}`, problems);
  }
  const keyIssues = keyProblems(doc, file, at);
  if (keyIssues.length) throw new ConfigError(`invalid config file:\n  ${keyIssues.join('\n  ')}`, keyIssues);
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (e) {
    if (e instanceof ReferenceError && /alias/i.test(e.message)) {
      throw new ConfigError(
        `${file}: too many YAML alias expansions (more than ${MAX_ALIAS_COUNT}: an alias bomb?); write the values out or use fewer aliases`,
      );
    }
    throw new ConfigError(`${file}: cannot read the ${kind} document (${(e as Error).name}); fix the file`);
  }
  if (raw === null || raw === undefined) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(
      `${file}: the top level must be a mapping of keys (mapping:, targets:, sync:, ...)`,
    );
  }
  const problems: string[] = [];
  const out = substituteEnv(raw, env, file, problems) as Record<string, unknown>;
  if (problems.length) throw new ConfigError(`invalid config file:\n  ${problems.join('\n  ')}`, problems);
  return out;
}
