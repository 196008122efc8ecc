import { readFileSync } from 'node:fs';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import { parse } from 'yaml';
import { PRELUDE_OPENAPI_PATH } from '../../../helpers/seeds.js';

/**
 * Validators built from the Prelude OpenAPI file itself (004, extracted unchanged), so the simulator is
 * checked against the vendor's document and not against our reading of it. OpenAPI 3.1 schemas are JSON
 * Schema 2020-12; the components are added under an $id and `#/components/...` refs point into it.
 */
export const OPENAPI_PATH = PRELUDE_OPENAPI_PATH;
export const PATCH_PATH = '/v2/session/apps/{appID}/users/{userID}/profile';

interface Operation {
  requestBody: { content: { 'application/json': { schema: unknown } } };
  responses: Record<string, { content?: { 'application/json': { schema: unknown } } }>;
}

const doc = parse(readFileSync(OPENAPI_PATH, 'utf8')) as {
  paths: Record<string, { patch: Operation }>;
  components: { schemas: Record<string, unknown> };
};
const ID = 'prelude-openapi.json';
// strict: false because OpenAPI adds keywords (`examples` is fine, but `description` on a $ref'd
// parameter schema etc.) that strict mode would reject without changing what validates.
const ajv = new Ajv2020({ strict: false, allErrors: true });
ajv.addSchema({ $id: ID, components: doc.components });

function rebase(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(rebase);
  if (typeof schema !== 'object' || schema === null) return schema;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema)) {
    out[k] = k === '$ref' && typeof v === 'string' && v.startsWith('#/') ? ID + v : rebase(v);
  }
  return out;
}

export const operation = doc.paths[PATCH_PATH]!.patch;

/** PatchUserProfileRequest, as the operation's requestBody references it. */
export const validateRequest: ValidateFunction = ajv.compile(
  rebase(operation.requestBody.content['application/json'].schema) as object,
);

/** The statuses the OpenAPI documents a JSON body for (400, 403, 404). */
export const documentedErrorStatuses = Object.keys(operation.responses).filter(
  (s) => operation.responses[s]!.content !== undefined,
);

const byStatus = new Map<string, ValidateFunction>();
/** The validator of a status's response body (a oneOf for 400 and 404). */
export function validateResponse(status: number): ValidateFunction {
  const key = String(status);
  const cached = byStatus.get(key);
  if (cached) return cached;
  const schema = operation.responses[key]?.content?.['application/json'].schema;
  if (!schema) throw new Error(`the OpenAPI documents no body for ${key}`);
  const v = ajv.compile(rebase(schema) as object);
  byStatus.set(key, v);
  return v;
}

/** A component schema's validator, e.g. `UserNotFoundError`. */
export function validateComponent(name: string): ValidateFunction {
  return ajv.compile({ $ref: `${ID}#/components/schemas/${name}` });
}

/** The enum values of a component's `code` property, e.g. `['user_not_found']`. */
export function componentCode(name: string): string {
  const schema = doc.components.schemas[name] as { properties: { code: { enum: string[] } } };
  return schema.properties.code.enum[0]!;
}
