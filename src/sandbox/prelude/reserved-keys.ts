/**
 * Reserved profile keys. 004 defines `reserved_profile_key` but not which keys are reserved; the
 * project's documented choice (src/sandbox/CONTRACT.md), duplicated on purpose in the connector rather
 * than shared: the JWT registered claims (a Prelude profile feeds the session token's claims), the ids
 * and timestamps Prelude owns, and the `prelude_` and `_` prefixes. Keys compare case-sensitively.
 */
const RESERVED = new Set([
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

export function isReservedProfileKey(key: string): boolean {
  return RESERVED.has(key) || key.startsWith('prelude_') || key.startsWith('_');
}
