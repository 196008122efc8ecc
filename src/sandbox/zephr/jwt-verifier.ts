import {
  createLocalJWKSet,
  type JSONWebKeySet,
  type JWTVerifyGetKey,
  jwtVerify,
  type ProtectedHeaderParameters,
} from 'jose';

export interface VerifiedJwt {
  sub: string;
  /** Expiry, epoch seconds. */
  exp: number;
  /** The key that signed it: `hs256` for the shared secret, `jwks:<kid or alg>` for a JWKS key. */
  key: string;
}

/** Entries kept before the cache starts over: far more than the tokens a sync holds at once. */
const CACHE_LIMIT = 10_000;

/**
 * Verifies Zephr JWTs: HS256 with the tenant's shared secret, RS256/ES256 against a JWKS given at start
 * (as Zephr tenants verify tokens of their identity provider). `exp` and `sub` are required; `exp` is
 * checked on every use, so a cached token still expires on time. Verified tokens are cached because a
 * client reuses one token for many requests and a signature check costs more than the rest of a request.
 */
export class JwtVerifier {
  private readonly cache = new Map<string, VerifiedJwt>();
  private readonly algorithms: string[];
  private readonly getKey: JWTVerifyGetKey;

  constructor(
    secret: string,
    jwks?: JSONWebKeySet,
    private readonly now: () => number = Date.now,
  ) {
    const hmac = new TextEncoder().encode(secret);
    const remote = jwks ? createLocalJWKSet(jwks) : undefined;
    this.algorithms = remote ? ['HS256', 'RS256', 'ES256'] : ['HS256'];
    this.getKey = async (header: ProtectedHeaderParameters, token) => {
      if (header.alg === 'HS256') return hmac;
      if (!remote) throw new Error('no JWKS configured');
      return remote(header, token);
    };
  }

  /** The verified token, or undefined when it is not valid now (bad signature, expired, no `sub`...). */
  async verify(token: string): Promise<VerifiedJwt | undefined> {
    const nowSeconds = this.now() / 1000;
    const hit = this.cache.get(token);
    if (hit) return hit.exp > nowSeconds ? hit : undefined;
    try {
      const { payload, protectedHeader } = await jwtVerify(token, this.getKey, {
        algorithms: this.algorithms,
        requiredClaims: ['exp', 'sub'],
        currentDate: new Date(this.now()),
      });
      if (typeof payload.sub !== 'string' || payload.sub === '' || typeof payload.exp !== 'number')
        return undefined;
      const verified: VerifiedJwt = {
        sub: payload.sub,
        exp: payload.exp,
        key: protectedHeader.alg === 'HS256' ? 'hs256' : `jwks:${protectedHeader.kid ?? protectedHeader.alg}`,
      };
      if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
      this.cache.set(token, verified);
      return verified;
    } catch {
      return undefined;
    }
  }
}
