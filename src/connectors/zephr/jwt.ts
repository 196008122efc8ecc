import { createPrivateKey, type KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';
import type { ZephrConfig } from '../../config/schema.js';
import { ConfigError } from '../../core/config-error.js';

export type ZephrJwtAlg = 'HS256' | 'RS256' | 'ES256';

/**
 * Mints the per-user JWT Zephr authenticates a profile write with (seed 000, security schemes
 * JwtBearer / JwtHeaderXZephrJwt). Claims: `{subjectClaim}` (default `sub`) = source user id, `iat`,
 * `exp` = iat + ttlSeconds (at most 300, issue 3). HS256 with the shared secret, or RS256/ES256 chosen
 * by the PEM key's type: real tenants verify those against their identity provider's JWKS, which
 * finds the key by `kid`. Nothing is cached: a token lives minutes and minting one costs microseconds
 * (HS256) to a millisecond (RS256), far below a network round trip; nothing secret goes to Redis.
 */
export interface JwtMinter {
  readonly alg: ZephrJwtAlg;
  mint(userId: string, now?: number): Promise<string>;
}

/** Env vars often carry a PEM on one line with literal `\n`: accept both. */
function normalisePem(pem: string): string {
  return pem.includes('\n') ? pem : pem.replace(/\\n/g, '\n');
}

/** The algorithm for a private key, by its type: RSA -> RS256, EC P-256 -> ES256, anything else refused. */
export function algForKey(key: KeyObject): ZephrJwtAlg {
  if (key.asymmetricKeyType === 'rsa') return 'RS256';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  const kind =
    key.asymmetricKeyType === 'ec'
      ? `EC ${key.asymmetricKeyDetails?.namedCurve ?? '?'}`
      : String(key.asymmetricKeyType);
  throw new ConfigError(
    `ZEPHR_JWT_PRIVATE_KEY: a ${kind} key cannot sign RS256 or ES256; use an RSA key or an EC P-256 key`,
  );
}

export function createJwtMinter(jwt: ZephrConfig['jwt']): JwtMinter {
  let key: KeyObject | Uint8Array;
  let alg: ZephrJwtAlg;
  if (jwt.privateKey) {
    try {
      key = createPrivateKey(normalisePem(jwt.privateKey));
    } catch {
      // The parser's message may quote key material: never pass it on.
      throw new ConfigError('ZEPHR_JWT_PRIVATE_KEY: not a readable PEM private key (PKCS#8, PKCS#1 or SEC1)');
    }
    alg = algForKey(key);
  } else if (jwt.secret) {
    key = new TextEncoder().encode(jwt.secret);
    alg = 'HS256';
  } else {
    throw new ConfigError('ZEPHR_JWT_SECRET / ZEPHR_JWT_PRIVATE_KEY: set exactly one of the two');
  }
  const header = { alg, typ: 'JWT', ...(jwt.privateKey && jwt.keyId ? { kid: jwt.keyId } : {}) };
  return {
    alg,
    async mint(userId: string, now = Date.now()): Promise<string> {
      const iat = Math.floor(now / 1000);
      return new SignJWT({ [jwt.subjectClaim]: userId })
        .setProtectedHeader(header)
        .setIssuedAt(iat)
        .setExpirationTime(iat + jwt.ttlSeconds)
        .sign(key);
    },
  };
}
