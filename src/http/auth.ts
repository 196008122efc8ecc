import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/**
 * The dashboard's token check. Two ways to present `OPS_DASHBOARD_TOKEN`, because the dashboard has two
 * kinds of client: scripts send `Authorization: Bearer <token>`; a browser gets a Basic challenge and
 * the operator types the token as the password (any user name), which the browser then re-sends with
 * every asset and API call the page makes.
 *
 * Both sides are hashed before `timingSafeEqual`, which needs equal lengths: comparing digests leaks
 * neither the token's characters nor its length through timing.
 */
export function tokenMatches(req: IncomingMessage, token: string): boolean {
  const presented = presentedToken(req.headers.authorization);
  if (presented === undefined) return false;
  return timingSafeEqual(digest(presented), digest(token));
}

/**
 * Issue 12.2: the ops API's check (`OPS_API_TOKEN`): `Authorization: Bearer <token>` only. No Basic:
 * a browser would re-send Basic credentials with any page's request, and this route writes.
 */
export function bearerMatches(req: IncomingMessage, token: string): boolean {
  const header = req.headers.authorization;
  if (!header?.toLowerCase().startsWith('bearer ')) return false;
  return timingSafeEqual(digest(header.slice(7).trim()), digest(token));
}

/** The `WWW-Authenticate` challenge that makes a browser ask for the token. */
export const CHALLENGE = 'Basic realm="profile-sync dashboard", charset="UTF-8"';

function presentedToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const space = header.indexOf(' ');
  if (space === -1) return undefined;
  const scheme = header.slice(0, space).toLowerCase();
  const value = header.slice(space + 1).trim();
  if (scheme === 'bearer') return value;
  if (scheme === 'basic') {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon === -1 ? undefined : decoded.slice(colon + 1);
  }
  return undefined;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}
