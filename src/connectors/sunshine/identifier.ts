import type { SunshineConfig } from '../../config/schema.js';

/**
 * The identifier query that keys a user's profile: `{source}:{type}:external_id:{id}` (seed 003,
 * "Identifier queries": `<profile_source>:<profile_type>:<identifier_key>:<identifier_value>`). The value
 * is the source user id verbatim; Zendesk splits on the first three `:` only, so an id that itself holds
 * `:` stays one value.
 */
export function identifierQuery(config: Pick<SunshineConfig, 'profileSource' | 'profileType'>, id: string) {
  return `${config.profileSource}:${config.profileType}:external_id:${id}`;
}

/** Collection path. The query goes in `query: {identifier}` so http.ts percent-encodes it as ONE value. */
export const PROFILES_PATH = '/api/v2/user_profiles';

/** `/api/v2/user_profiles/{profile_id}` with the id percent-encoded as one path segment. */
export function profilePath(profileId: string): string {
  return `${PROFILES_PATH}/${encodeURIComponent(profileId)}`;
}

/**
 * `path?identifier=...` exactly as http.ts sends it (encodeURIComponent: `:` -> %3A, `/` -> %2F,
 * `%` -> %25, `+` -> %2B, space -> %20, non-ASCII as UTF-8), for plans and messages.
 */
export function identifierPath(query: string): string {
  return `${PROFILES_PATH}?identifier=${encodeURIComponent(query)}`;
}
