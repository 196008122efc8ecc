import { readFileSync } from 'node:fs';
import { isAbsolute, join, relative } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../core/config-error.js';
import { RejectedRecordError } from '../core/errors.js';
import { sha256Base64url } from '../core/hashing.js';
import { TARGET_IDS, type TargetId } from '../core/targets.js';
import type { FieldMap, FieldValue, SourceUser } from '../core/types.js';
import { packageRoot } from '../paths.js';
import {
  compileTemplate,
  type MappingOverrides,
  type MappingRule,
  mappingSchema,
  type SourcePath,
} from './mapping-schema.js';
import { preludeReservedKeyReason } from './prelude-reserved-keys.js';

/**
 * The mapping from a source user to each target's managed fields (issue 3 "Targets and the default
 * mapping", "Mapping overrides"). Defaults live in config/mapping.default.yaml; the `mapping:` section of
 * the PROFILE_SYNC_CONFIG file overrides them field by field. Everything is checked when the config is
 * loaded (ConfigError -> exit 2), so a bad mapping is never discovered in production.
 */

/**
 * Bump when `map` (the evaluators below, `sourceValue`, the transforms) changes what it makes of a
 * user: every mapping digest changes, and the scan compares every user again (jobs/scan-blocks.ts).
 */
const MAP_CODE_VERSION = 1;

/** Relative to the package root. */
export const DEFAULT_MAPPING_FILE = 'config/mapping.default.yaml';

/** Seed 003 documents no identifier limit in the API text; Zendesk's limits page caps a profile at 20. */
export const SUNSHINE_MAX_IDENTIFIERS = 20;

/**
 * Keys we accept for Zephr/Prelude fields, Sunshine identifier types and attribute keys: letters,
 * digits, `_` and `-`, at most 64. Our choice: `:` would break Sunshine identifier queries
 * (`source:type:key:value`, seed 003), `.` would be ambiguous in our flat dotted FieldMap, and
 * anything more exotic is more likely a typo than a real vendor field.
 */
const KEY = /^[A-Za-z0-9_-]{1,64}$/;

/** Zendesk lowercases these identifier values itself (seed 003); an unlowercased mapping would drift forever. */
const SUNSHINE_LOWERCASED_IDENTIFIERS = new Set(['email', 'twitter']);

export interface TargetMapping {
  readonly target: TargetId;
  /** Every FieldMap key this mapping can produce: the fields profile-sync manages in the target. */
  readonly fields: readonly string[];
  /** The effective rules (defaults plus overrides), for `config check`. */
  readonly spec: Readonly<Record<string, MappingRule>>;
  /**
   * Issue 11: what makes `map` what it is (the rules in order and this code's version): two mappings
   * with one digest map every user alike. The scan's block conclusions (jobs/scan-blocks.ts) hold only
   * under the digest they were made with.
   */
  readonly digest: string;
  /**
   * Source user -> managed fields. Fields whose value is absent (or empty with omit-if-empty) are left
   * out. Throws RejectedRecordError naming the field when a value cannot be written.
   */
  map(user: SourceUser): FieldMap;
}

/** A rule and the file it came from (for error messages). */
interface Located {
  rule: MappingRule;
  file: string;
  /** Dotted path of the rule inside that file. */
  at: string;
}

function fieldPath(prefix: string, target: TargetId, field: string): string {
  const key = /^[A-Za-z0-9_-]+$/.test(field) ? `.${field}` : `[${JSON.stringify(field)}]`;
  return `${prefix}${target}${key}`;
}

/** A path for humans: relative to the cwd when that is shorter. */
export function displayFile(file: string): string {
  if (!isAbsolute(file)) return file;
  const rel = relative(process.cwd(), file);
  return rel && !rel.startsWith('..') && rel.length < file.length ? rel : file;
}

function zodPath(path: PropertyKey[]): string {
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

let defaultsCache: { file: string; value: Record<TargetId, Record<string, MappingRule>> } | undefined;

/** Reads and validates config/mapping.default.yaml (cached per file). */
export function loadDefaultMappings(
  file: string = join(packageRoot(), DEFAULT_MAPPING_FILE),
): Record<TargetId, Record<string, MappingRule>> {
  if (defaultsCache?.file === file) return defaultsCache.value;
  const shown = displayFile(file);
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(file, 'utf8'));
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code ?? (e as Error).name;
    throw new ConfigError(`${shown}: cannot read the default mapping (${why}); reinstall profile-sync`);
  }
  const parsed = mappingSchema.safeParse(raw ?? {});
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${shown}: ${zodPath(i.path)}: ${i.message}`);
    throw new ConfigError(`invalid default mapping:\n  ${problems.join('\n  ')}`, problems);
  }
  const value = {} as Record<TargetId, Record<string, MappingRule>>;
  for (const t of TARGET_IDS) {
    value[t] = {};
    for (const [field, rule] of Object.entries(parsed.data[t] ?? {})) if (rule) value[t][field] = rule;
  }
  defaultsCache = { file, value };
  return value;
}

/** Defaults with the overrides applied, each rule with where it came from. */
function effectiveSpec(
  target: TargetId,
  defaults: Record<string, MappingRule>,
  defaultsFile: string,
  overrides: Record<string, MappingRule | null> | undefined,
  overridesFile: string,
  problems: string[],
): Map<string, Located> {
  const spec = new Map<string, Located>();
  for (const [field, rule] of Object.entries(defaults)) {
    spec.set(field, { rule, file: defaultsFile, at: fieldPath('', target, field) });
  }
  for (const [field, rule] of Object.entries(overrides ?? {})) {
    const at = fieldPath('mapping.', target, field);
    if (rule === null) {
      if (target === 'sunshine' && field === 'identifiers.external_id') {
        problems.push(
          `${overridesFile}: ${at}: identifiers.external_id is the Sunshine profile key and cannot be removed; delete this line`,
        );
        continue;
      }
      spec.delete(field);
    } else {
      spec.set(field, { rule, file: overridesFile, at });
    }
  }
  return spec;
}

/** Per-target checks of one field; each problem names the file, the path and the fix. */
function fieldProblems(target: TargetId, field: string, loc: Located): string[] {
  const { rule } = loc;
  const where = `${loc.file}: ${loc.at}`;
  const out: string[] = [];
  if (target === 'sunshine') {
    const [head, ...rest] = field.split('.');
    const key = rest.join('.');
    if (field === 'name') {
      if (rule.const !== undefined && typeof rule.const !== 'string') {
        out.push(`${where}: the Sunshine profile name is a string (seed 003); quote the constant`);
      }
    } else if (head === 'identifiers' && KEY.test(key)) {
      if (key === 'external_id' && (rule.from !== 'id' || (rule.transforms ?? []).length > 0)) {
        out.push(
          `${where}: identifiers.external_id is the profile key and must be {from: id} without transforms; map your value to another identifier type`,
        );
      }
      if (rule.const !== undefined && typeof rule.const !== 'string') {
        out.push(`${where}: identifier values are strings; quote the constant`);
      }
      if (
        SUNSHINE_LOWERCASED_IDENTIFIERS.has(key) &&
        rule.const === undefined &&
        !rule.transforms?.includes('lowercase')
      ) {
        out.push(
          `${where}: Zendesk lowercases ${key} identifiers (seed 003), so an unlowercased value would differ on every read; add lowercase to transforms`,
        );
      }
    } else if (!(head === 'attributes' && KEY.test(key))) {
      out.push(
        `${where}: a Sunshine field is name, identifiers.<type> or attributes.<key> (type and key: letters, digits, _ and -, at most 64); rename it`,
      );
    }
    return out;
  }
  if (!KEY.test(field)) {
    out.push(
      `${where}: a ${target} field name is letters, digits, _ and -, at most 64 characters; rename it`,
    );
  }
  if (target === 'prelude') {
    const reserved = preludeReservedKeyReason(field);
    if (reserved)
      out.push(`${where}: ${reserved} (Prelude answers 400 reserved_profile_key, seed 004); rename it`);
    if (rule.const !== undefined && typeof rule.const !== 'string') {
      out.push(
        `${where}: Prelude profile values are strings only (seed 004 additionalProperties: string); quote the constant`,
      );
    }
  }
  return out;
}

type Evaluator = (user: SourceUser) => FieldValue | undefined;

function sourceValue(user: SourceUser, path: SourcePath): string | undefined {
  const v = user[path];
  return v === null || v === undefined ? undefined : String(v);
}

function templateEvaluator(render: ReturnType<typeof compileTemplate>): Evaluator {
  return (u) => render((p) => sourceValue(u, p));
}

function evaluator(rule: MappingRule): Evaluator {
  const transforms = rule.transforms ?? [];
  const omitIfEmpty = transforms.includes('omit-if-empty');
  const steps = transforms.filter((t) => t !== 'omit-if-empty');
  const get: Evaluator =
    rule.from !== undefined
      ? (u) => sourceValue(u, rule.from!)
      : rule.template !== undefined
        ? templateEvaluator(compileTemplate(rule.template))
        : () => rule.const;
  return (user) => {
    let v = get(user);
    if (typeof v !== 'string') return v;
    for (const t of steps) {
      v = t === 'trim' ? v.trim() : t === 'lowercase' ? v.toLowerCase() : v.toUpperCase();
    }
    return omitIfEmpty && v === '' ? undefined : v;
  };
}

/** Compiles one target's effective spec. Throws ConfigError listing every problem. */
function compileTarget(target: TargetId, spec: Map<string, Located>, problems: string[]): TargetMapping {
  for (const [field, loc] of spec) problems.push(...fieldProblems(target, field, loc));
  if (target === 'sunshine') {
    const ids = [...spec.keys()].filter((f) => f.startsWith('identifiers.'));
    if (!spec.has('identifiers.external_id')) {
      problems.push(
        `${[...spec.values()][0]?.file ?? DEFAULT_MAPPING_FILE}: mapping.sunshine: identifiers.external_id (the profile key) is missing; add identifiers.external_id: {from: id}`,
      );
    }
    if (ids.length > SUNSHINE_MAX_IDENTIFIERS) {
      const loc = spec.get(ids.at(-1)!)!;
      problems.push(
        `${loc.file}: mapping.sunshine: ${ids.length} identifiers, Zendesk allows at most ${SUNSHINE_MAX_IDENTIFIERS} per profile; remove ${ids.length - SUNSHINE_MAX_IDENTIFIERS}`,
      );
    }
  }
  const fields = [...spec.keys()];
  const evals = fields.map((f) => [f, evaluator(spec.get(f)!.rule)] as const);
  const rules = Object.fromEntries(fields.map((f) => [f, spec.get(f)!.rule]));
  const digest = sha256Base64url(
    JSON.stringify([MAP_CODE_VERSION, target, fields.map((f) => [f, rules[f]])]),
  );
  return {
    target,
    fields,
    spec: rules,
    digest,
    map(user) {
      const out: FieldMap = {};
      for (const [field, evaluate] of evals) {
        const v = evaluate(user);
        if (v === undefined) continue;
        // Sunshine identifiers need a value (seed 003: "type and value"); an empty one would be a 400.
        if (target === 'sunshine' && v === '' && field.startsWith('identifiers.')) {
          throw new RejectedRecordError(
            user.id,
            `sunshine ${field}: empty identifier value (add omit-if-empty to the rule to leave it out)`,
          );
        }
        out[field] = v;
      }
      return out;
    },
  };
}

export interface CompileMappingsOptions {
  /** @defaultValue `<package root>/config/mapping.default.yaml` */
  defaultsFile?: string;
}

/**
 * The effective mapping of every target (defaults plus the config file's `mapping:` overrides),
 * validated. Compiled for all three targets, enabled or not, so a bad override is refused even before
 * its target is switched on. Throws ConfigError naming file, path and fix.
 */
export function compileMappings(
  config: { mapping?: MappingOverrides; configFile?: string },
  options: CompileMappingsOptions = {},
): Record<TargetId, TargetMapping> {
  const defaultsFile = options.defaultsFile ?? join(packageRoot(), DEFAULT_MAPPING_FILE);
  const defaults = loadDefaultMappings(defaultsFile);
  // As the operator wrote it in PROFILE_SYNC_CONFIG, like the config file's own errors.
  const overridesFile = config.configFile ?? 'PROFILE_SYNC_CONFIG';
  const problems: string[] = [];
  const out = {} as Record<TargetId, TargetMapping>;
  for (const target of TARGET_IDS) {
    const spec = effectiveSpec(
      target,
      defaults[target],
      displayFile(defaultsFile),
      config.mapping?.[target],
      overridesFile,
      problems,
    );
    out[target] = compileTarget(target, spec, problems);
  }
  if (problems.length) throw new ConfigError(`invalid mapping:\n  ${problems.join('\n  ')}`, problems);
  return out;
}
