import { isReservedProfileKey } from './reserved-keys.js';

export type PatchRequestCheck =
  | { ok: true; profile: Record<string, string> }
  | { ok: false; code: 'invalid_request' | 'reserved_profile_key'; key?: string };

/**
 * Checks a PATCH body against PatchUserProfileRequest (004): an object with a required `profile` whose
 * values are all strings (other top-level properties are allowed: the schema does not forbid them).
 * Anything else, including a body that is not JSON (pass any non-object, e.g. a symbol), is
 * `invalid_request`; a well-formed body with a reserved key is `reserved_profile_key`.
 */
export function checkPatchRequest(body: unknown): PatchRequestCheck {
  if (!isObject(body)) return { ok: false, code: 'invalid_request' };
  const profile = body.profile;
  if (!isObject(profile)) return { ok: false, code: 'invalid_request' };
  for (const value of Object.values(profile)) {
    if (typeof value !== 'string') return { ok: false, code: 'invalid_request' };
  }
  for (const key of Object.keys(profile)) {
    if (isReservedProfileKey(key)) return { ok: false, code: 'reserved_profile_key', key };
  }
  return { ok: true, profile: profile as Record<string, string> };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
