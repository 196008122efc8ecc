import { createPublicKey, type KeyObject } from 'node:crypto';
import { exportJWK, type JWK } from 'jose';
import type { ZephrConfig } from '../../config/schema.js';
import { ConfigError } from '../../core/config-error.js';
import { algForKey, keyIdOf, readPrivateKey, type ZephrJwtAlg } from './jwt.js';

/**
 * Issue 12.6: the JWK set Zephr verifies our tokens with (RS256/ES256: the tenant's JWT settings point
 * at a public key set; vendor-facts.md, Zephr). The current key (`ZEPHR_JWT_PRIVATE_KEY`, kid
 * `ZEPHR_JWT_KEY_ID`) signs every token; the next key (`ZEPHR_JWT_NEXT_PRIVATE_KEY`, kid
 * `ZEPHR_JWT_NEXT_KEY_ID`) is only published beside it, so Zephr knows it before the first token it
 * signs (the rotation steps: docs/targets.md). A kid not configured is the key's RFC 7638 thumbprint.
 * Only public members leave this module: the JWK is exported from the public key, and every private
 * member a JWK can have is dropped again in case a library ever adds one.
 */

export interface PublicJwk extends JWK {
  kid: string;
  alg: Exclude<ZephrJwtAlg, 'HS256'>;
  use: 'sig';
}

export interface Jwks {
  keys: PublicJwk[];
}

/** The members that make a JWK private (RFC 7518 6.2.2, 6.3.2, 6.4.1). */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

/** The public JWK of a private key, with kid, alg and `use: sig`; never a private member. */
export async function publicJwk(
  key: KeyObject,
  kid: string | undefined,
  variable = 'ZEPHR_JWT_PRIVATE_KEY',
): Promise<PublicJwk> {
  const alg = algForKey(key, variable) as PublicJwk['alg'];
  const jwk: JWK = await exportJWK(createPublicKey(key));
  for (const m of PRIVATE_MEMBERS) delete (jwk as Record<string, unknown>)[m];
  return { ...jwk, kid: await keyIdOf(key, kid), alg, use: 'sig' };
}

/** The JWK set to publish, or null when Zephr is configured with a shared HS256 secret (no public key). */
export async function zephrJwks(jwt: ZephrConfig['jwt']): Promise<Jwks | null> {
  if (!jwt.privateKey) return null;
  const keys = [await publicJwk(readPrivateKey(jwt.privateKey, 'ZEPHR_JWT_PRIVATE_KEY'), jwt.keyId)];
  if (jwt.nextPrivateKey) {
    const next = await publicJwk(
      readPrivateKey(jwt.nextPrivateKey, 'ZEPHR_JWT_NEXT_PRIVATE_KEY'),
      jwt.nextKeyId,
      'ZEPHR_JWT_NEXT_PRIVATE_KEY',
    );
    if (next.kid === keys[0]!.kid) {
      throw new ConfigError(
        'ZEPHR_JWT_NEXT_PRIVATE_KEY: the next key has the kid of the current one (the same key, or ZEPHR_JWT_NEXT_KEY_ID equal to ZEPHR_JWT_KEY_ID); Zephr finds a key by its kid',
      );
    }
    keys.push(next);
  }
  return { keys };
}
