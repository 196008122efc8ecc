import { ConfigError } from '../../core/config-error.js';
import { RejectedRecordError } from '../../core/errors.js';
import { unsafePathSegment } from '../target-common.js';

/**
 * Prelude's own user id for a source user: the link table's entry when there is one (links.ts), else
 * `PRELUDE_USER_ID_TEMPLATE` with `{id}` replaced by the source user id (default `{id}`: the app knows
 * users under their source ids). Checked when the connector is built: a template without `{id}` would
 * send every user to the same Prelude user; an unknown `{token}` is a typo.
 */
export function compileUserIdTemplate(template: string): (sourceId: string) => string {
  const tokens = template.match(/\{[^}]*\}/g) ?? [];
  const unknown = tokens.filter((t) => t !== '{id}');
  if (unknown.length > 0) {
    throw new ConfigError(
      `PRELUDE_USER_ID_TEMPLATE: unknown token ${unknown.join(', ')}; the only token is {id} (the source user id)`,
    );
  }
  if (tokens.length === 0) {
    throw new ConfigError(
      'PRELUDE_USER_ID_TEMPLATE: must contain {id}, else every user would be written to the same Prelude user',
    );
  }
  return (sourceId) => template.replaceAll('{id}', sourceId);
}

/** `/v2/session/apps/{appID}/users`: the users of one app (lookups, create). */
export function usersPath(appId: string): string {
  return `/v2/session/apps/${encodeURIComponent(appId)}/users`;
}

/**
 * `/v2/session/apps/{appID}/users/{userID}`, both percent-encoded as one path segment each.
 * A Prelude user id that cannot be one segment (`.`, `..`, empty: it would change the path) is refused
 * with a RejectedRecordError naming the source user: that user's outcome is `rejected`, nothing is sent.
 */
export function userPath(appId: string, userId: string, sourceId?: string): string {
  const unsafe = unsafePathSegment(userId);
  if (unsafe !== undefined) {
    throw new RejectedRecordError(
      sourceId,
      `the Prelude user id ${JSON.stringify(userId)} ${unsafe}; it cannot be sent as a path segment (check the link table or PRELUDE_USER_ID_TEMPLATE)`,
    );
  }
  return `${usersPath(appId)}/${encodeURIComponent(userId)}`;
}

/** `/v2/session/apps/{appID}/users/{userID}/profile` (seed 004), refused as {@link userPath} is. */
export function profilePath(appId: string, userId: string, sourceId?: string): string {
  return `${userPath(appId, userId, sourceId)}/profile`;
}
