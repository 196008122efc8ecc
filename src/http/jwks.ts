import type { Config } from '../config/schema.js';
import { type Jwks, zephrJwks } from '../connectors/zephr/jwks.js';

/**
 * Issue 12.6: `GET /.well-known/jwks.json` on the ops surface, without the dashboard token (public
 * keys are public: Zephr, or whatever fetches keys for it, sends none). The set is built once, at the
 * first request, from the configuration the process started with: a rotation step is a restart with
 * new variables (docs/targets.md). 404 when Zephr is off or uses a shared HS256 secret.
 */
export type JwksAnswer = { status: 200; body: Jwks } | { status: 404; body: { error: string } };

export function jwksEndpoint(config: Config): () => Promise<JwksAnswer> {
  let cached: Promise<JwksAnswer> | undefined;
  return () => {
    cached ??= (async (): Promise<JwksAnswer> => {
      const jwt = config.targets.zephr?.jwt;
      const jwks = jwt ? await zephrJwks(jwt) : null;
      if (jwks) return { status: 200, body: jwks };
      return {
        status: 404,
        body: {
          error: jwt
            ? 'no JWK set: Zephr uses a shared HS256 secret (ZEPHR_JWT_SECRET), which has no public key'
            : 'no JWK set: Zephr is not enabled (ZEPHR_URL)',
        },
      };
    })();
    return cached;
  };
}
