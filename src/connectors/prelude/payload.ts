import type { FieldMap } from '../../core/types.js';

/** Seed 004 `PatchUserProfileRequest`: `{"profile": {key: string}}`, additionalProperties strings only. */
export interface PreludePatchBody {
  profile: Record<string, string>;
}

/**
 * The PATCH body for a write. PATCH merges keys (seed 004 "Update the profile of a user"), so only
 * what changed is sent, and a managed key that disappeared from the source is sent as "" (the only way
 * to clear a key; the API has no delete). With `previous` null everything in `next` is sent.
 * Values are strings by construction: non-string mappings are refused at config load.
 */
export function patchBody(previous: FieldMap | null, next: FieldMap): PreludePatchBody {
  const profile: Record<string, string> = {};
  for (const [k, v] of Object.entries(next)) {
    if (previous === null || previous[k] !== v) profile[k] = String(v);
  }
  for (const k of Object.keys(previous ?? {})) if (!(k in next)) profile[k] = '';
  return { profile };
}

/** Every managed key set to "": how remove() clears a user's profile. */
export function clearBody(managed: Iterable<string>): PreludePatchBody {
  const profile: Record<string, string> = {};
  for (const k of [...managed].sort()) profile[k] = '';
  return { profile };
}
