import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import { ConfigError } from './errors.js';

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
      const v = env[name];
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
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, substituteEnv(v, env, file, problems, [...path, k])]),
    );
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
    const child = shape[k];
    if (!child) out.push([...path, k]);
    else out.push(...unknownKeys(v, child, [...path, k]));
  }
  return out;
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
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true, lineCounter });
  if (doc.errors.length) {
    const problems = doc.errors.map((err) => {
      const pos = lineCounter.linePos(err.pos[0]);
      const at = `line ${pos.line}, column ${pos.col}`;
      return `${file}: ${kind} syntax error at ${at} (${err.code}); fix the file`;
    });
    throw new ConfigError(`invalid config file:\n  ${problems.join('\n  ')}`, problems);
  }
  const raw: unknown = doc.toJS();
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
