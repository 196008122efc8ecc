import { bearerToken, cookie } from '../kit/auth.js';
import type { UnauthenticatedRequest } from '../kit/types.js';

/**
 * Where a Zephr client may put its JWT: seed 000's security schemes, checked in this order. The first one
 * present is used (an invalid token there is not rescued by another place).
 *
 * | scheme (seed 000)     | where                          |
 * | ---                   | ---                            |
 * | JwtBearer             | `Authorization: Bearer <jwt>`  |
 * | JwtHeaderXZephrJwt    | `X-Zephr-JWT: <jwt>`           |
 * | JwtHeaderXBlaizeJwt   | `X-Blaize-JWT: <jwt>`          |
 * | JwtQuery              | `?jwt=<jwt>`                   |
 * | JwtCookie             | cookie `blaize_jwt=<jwt>`      |
 * | CookieBlaizeSession   | cookie `blaize_session=<jwt>`  |
 *
 * A real `blaize_session` holds a server session id; the sandbox has no login, so it takes a JWT there.
 * Seed 000 names the JwtCookie scheme but not the cookie: Zephr's JWT documentation does, `blaize_jwt`
 * with an underscore (../shared/seeds/vendor-facts.md, "Zephr"); `blaize-jwt` is not a JWT location.
 */
export function findJwt(req: UnauthenticatedRequest): string | undefined {
  const h = req.headers;
  const header = (name: string) => {
    const v = h[name];
    const s = Array.isArray(v) ? v[0] : v;
    return s && s.trim() !== '' ? s.trim() : undefined;
  };
  return (
    bearerToken(h) ??
    header('x-zephr-jwt') ??
    header('x-blaize-jwt') ??
    (req.query.get('jwt') || undefined) ??
    cookie(h, 'blaize_jwt') ??
    cookie(h, 'blaize_session')
  );
}
