/**
 * Prelude profile keys profile-sync refuses to write. Seed 004 documents a `reserved_profile_key` error
 * but lists no keys, so this is our documented choice: the JWT registered claims (RFC 7519 §4.1: Prelude
 * sessions are JWT-based and a profile key colliding with a claim would be ambiguous), identifiers
 * Prelude itself owns, and any key in Prelude's or a private namespace (`prelude_`, `_`).
 * The sandbox keeps its own copy on purpose (a shared bug would pass its own tests).
 */
export const PRELUDE_RESERVED_KEYS: ReadonlySet<string> = new Set([
  'iss',
  'sub',
  'aud',
  'exp',
  'nbf',
  'iat',
  'jti',
  'id',
  'user_id',
  'app_id',
  'created_at',
  'updated_at',
]);

export const PRELUDE_RESERVED_PREFIXES: readonly string[] = ['prelude_', '_'];

/** Why `key` may not be a Prelude profile key, or undefined when it may. */
export function preludeReservedKeyReason(key: string): string | undefined {
  if (PRELUDE_RESERVED_KEYS.has(key)) return `'${key}' is a reserved Prelude profile key`;
  const prefix = PRELUDE_RESERVED_PREFIXES.find((p) => key.startsWith(p));
  if (prefix) return `Prelude profile keys may not start with '${prefix}'`;
  return undefined;
}
