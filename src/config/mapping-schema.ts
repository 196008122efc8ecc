import { z } from 'zod';

/**
 * The shape of the mapping (issue 3 "Mapping overrides"): per target a flat spec of
 * `field -> rule`, where a rule is `{from}`, `{template}` or `{const}` with optional `transforms`.
 * Shape only; the per-target rules (Sunshine key shapes, Prelude strings and reserved keys, ...) are
 * checked by src/config/mapping.ts on the effective spec (defaults plus overrides).
 */

/** The fields of a source user (seed 002: `{id, firstName, lastName, email}`). */
export const SOURCE_PATHS = ['id', 'firstName', 'lastName', 'email'] as const;
export type SourcePath = (typeof SOURCE_PATHS)[number];

/**
 * String transforms, applied in the order given; `omit-if-empty` (wherever it is listed) drops the
 * field when the final value is the empty string. Non-string constants pass through unchanged.
 */
export const TRANSFORMS = ['trim', 'lowercase', 'uppercase', 'omit-if-empty'] as const;
export type Transform = (typeof TRANSFORMS)[number];

const sourcePath = z.enum(SOURCE_PATHS, {
  error: (iss) => `unknown source path ${JSON.stringify(iss.input)}; use one of: ${SOURCE_PATHS.join(', ')}`,
});

const transform = z.enum(TRANSFORMS, {
  error: (iss) => `unknown transform ${JSON.stringify(iss.input)}; use one of: ${TRANSFORMS.join(', ')}`,
});

/** `{{` and `}}` are literal braces; `{name}` a source path. */
const TEMPLATE_TOKEN = /\{\{|\}\}|\{([^{}]*)\}/g;

/** The problems of a template string (unknown placeholder, stray brace), empty when it is fine. */
export function templateProblems(template: string): string[] {
  const problems: string[] = [];
  const rest = template.replace(TEMPLATE_TOKEN, (_m, name: string | undefined) => {
    if (name !== undefined && !(SOURCE_PATHS as readonly string[]).includes(name)) {
      problems.push(
        `unknown source path {${name}} in template; use one of: ${SOURCE_PATHS.map((p) => `{${p}}`).join(', ')}`,
      );
    }
    return '';
  });
  if (/[{}]/.test(rest)) problems.push('unbalanced brace in template; write {{ or }} for a literal brace');
  return problems;
}

/**
 * A template split once into literal text and source paths (a path at odd indexes), so that rendering
 * one user is a concatenation instead of a regex pass (issue 11.4: the scan maps every user). Renders
 * exactly what `renderTemplate` renders.
 */
export function compileTemplate(template: string): (get: (path: SourcePath) => string | undefined) => string {
  const parts: string[] = [''];
  let at = 0;
  for (const m of template.matchAll(TEMPLATE_TOKEN)) {
    parts[parts.length - 1] += template.slice(at, m.index);
    if (m[1] === undefined) parts[parts.length - 1] += m[0][0]!;
    else parts.push(m[1], '');
    at = m.index + m[0].length;
  }
  parts[parts.length - 1] += template.slice(at);
  return (get) => {
    let out = parts[0]!;
    for (let i = 1; i < parts.length; i += 2) out += (get(parts[i] as SourcePath) ?? '') + parts[i + 1]!;
    return out;
  };
}

/** Renders a template for a user; absent fields render as the empty string. */
export function renderTemplate(template: string, get: (path: SourcePath) => string | undefined): string {
  return template.replace(TEMPLATE_TOKEN, (m, name: string | undefined) => {
    if (name === undefined) return m[0]!; // `{{` -> `{`, `}}` -> `}`
    return get(name as SourcePath) ?? '';
  });
}

export const mappingRuleSchema = z
  .strictObject(
    {
      /** A source field, copied as is; absent or null -> the field is omitted. */
      from: sourcePath.optional(),
      /** `"{firstName} {lastName}"`: absent fields render empty. */
      template: z
        .string()
        .min(1)
        .superRefine((t, ctx) => {
          for (const message of templateProblems(t)) ctx.addIssue({ code: 'custom', message });
        })
        .optional(),
      /** A constant (Prelude: strings only, checked per target). */
      const: z.union([z.string(), z.number(), z.boolean()]).optional(),
      transforms: z.array(transform).optional(),
    },
    {
      error: (iss) =>
        iss.code === 'unrecognized_keys'
          ? `unknown key(s) ${iss.keys.map((k) => JSON.stringify(k)).join(', ')}; a rule has from, template or const, and optional transforms`
          : 'a rule is an object: {from: <source path>}, {template: "..."} or {const: <value>}, with optional transforms',
    },
  )
  .superRefine((r, ctx) => {
    const kinds = (['from', 'template', 'const'] as const).filter((k) => r[k] !== undefined);
    if (kinds.length !== 1) {
      ctx.addIssue({
        code: 'custom',
        message:
          kinds.length === 0
            ? 'a rule needs one of from, template or const'
            : `a rule has exactly one of from, template or const, not ${kinds.join(' and ')}`,
      });
    }
  });

export type MappingRule = z.infer<typeof mappingRuleSchema>;

/** Overrides for one target: `null` removes a default field. */
const targetOverrides = z.record(z.string().min(1), mappingRuleSchema.nullable());

/**
 * The `mapping:` section of the config file (and the shape of config/mapping.default.yaml, where `null`
 * is pointless but harmless).
 */
export const mappingSchema = z
  .strictObject(
    {
      sunshine: targetOverrides.optional(),
      zephr: targetOverrides.optional(),
      prelude: targetOverrides.optional(),
    },
    {
      error: (iss) =>
        iss.code === 'unrecognized_keys' ? 'the targets are sunshine, zephr and prelude' : undefined,
    },
  )
  .default({});

export type MappingOverrides = z.infer<typeof mappingSchema>;
