import { createHmac, createPrivateKey, createPublicKey, createSecretKey, type KeyObject } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, SignJWT } from 'jose';
import type { ZephrConfig } from '../../config/schema.js';
import { ConfigError } from '../../core/config-error.js';

export type ZephrJwtAlg = 'HS256' | 'RS256' | 'ES256';

/**
 * Mints the per-user JWT Zephr authenticates a profile write with (seed 000, security schemes
 * JwtBearer / JwtHeaderXZephrJwt). Claims: `{subjectClaim}` (default `sub`) = source user id, `iat`,
 * `exp` = iat + ttlSeconds (at most 300, issue 3). HS256 with the shared secret, or RS256/ES256 chosen
 * by the PEM key's type: real tenants verify those against a JWKS (`profile-sync zephr jwks`,
 * `/.well-known/jwks.json`, src/connectors/zephr/jwks.ts), which finds the key by `kid`: the header
 * always carries it (`ZEPHR_JWT_KEY_ID`, else the key's RFC 7638 thumbprint, as published). Only the
 * current key signs; `ZEPHR_JWT_NEXT_PRIVATE_KEY` is read here only to refuse a bad one at start. Nothing is cached: a token lives minutes and minting one costs microseconds
 * (HS256, signed here: `hs256Minter`) to a millisecond (RS256), far below a network round trip;
 * nothing secret goes to Redis.
 */
export interface JwtMinter {
  readonly alg: ZephrJwtAlg;
  mint(userId: string, now?: number): Promise<string>;
}

/** Env vars often carry a PEM on one line with literal `\n`: accept both. */
function normalisePem(pem: string): string {
  return pem.includes('\n') ? pem : pem.replace(/\\n/g, '\n');
}

/** A PEM private key; a ConfigError naming the variable (never quoting the parser, which may quote the key). */
export function readPrivateKey(pem: string, variable: string): KeyObject {
  try {
    return createPrivateKey(normalisePem(pem));
  } catch {
    throw new ConfigError(`${variable}: not a readable PEM private key (PKCS#8, PKCS#1 or SEC1)`);
  }
}

/** The kid of a private key: the configured one, or the RFC 7638 thumbprint of its public part. */
export async function keyIdOf(key: KeyObject, configured: string | undefined): Promise<string> {
  if (configured) return configured;
  return calculateJwkThumbprint(await exportJWK(createPublicKey(key)), 'sha256');
}

/** The algorithm for a private key, by its type: RSA -> RS256, EC P-256 -> ES256, anything else refused. */
export function algForKey(key: KeyObject, variable = 'ZEPHR_JWT_PRIVATE_KEY'): ZephrJwtAlg {
  if (key.asymmetricKeyType === 'rsa') return 'RS256';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  const kind =
    key.asymmetricKeyType === 'ec'
      ? `EC ${key.asymmetricKeyDetails?.namedCurve ?? '?'}`
      : String(key.asymmetricKeyType);
  throw new ConfigError(
    `${variable}: a ${kind} key cannot sign RS256 or ES256; use an RSA key or an EC P-256 key`,
  );
}

export function createJwtMinter(jwt: ZephrConfig['jwt']): JwtMinter {
  let key: KeyObject;
  let alg: ZephrJwtAlg;
  let kid: Promise<string> | undefined;
  if (jwt.privateKey) {
    const pkey = readPrivateKey(jwt.privateKey, 'ZEPHR_JWT_PRIVATE_KEY');
    alg = algForKey(pkey);
    key = pkey;
    if (jwt.nextPrivateKey) {
      algForKey(
        readPrivateKey(jwt.nextPrivateKey, 'ZEPHR_JWT_NEXT_PRIVATE_KEY'),
        'ZEPHR_JWT_NEXT_PRIVATE_KEY',
      );
    }
    kid = keyIdOf(pkey, jwt.keyId);
  } else if (jwt.secret) {
    return hs256Minter(jwt, createSecretKey(Buffer.from(jwt.secret, 'utf8')));
  } else {
    throw new ConfigError('ZEPHR_JWT_SECRET / ZEPHR_JWT_PRIVATE_KEY: set exactly one of the two');
  }
  return {
    alg,
    async mint(userId: string, now = Date.now()): Promise<string> {
      const iat = Math.floor(now / 1000);
      const header = { alg, typ: 'JWT', ...(kid ? { kid: await kid } : {}) };
      return new SignJWT({ [jwt.subjectClaim]: userId })
        .setProtectedHeader(header)
        .setIssuedAt(iat)
        .setExpirationTime(iat + jwt.ttlSeconds)
        .sign(key);
    },
  };
}

/**
 * HS256 signed here, synchronously (node:crypto HMAC, the key object made once): the same token as
 * jose's SignJWT (header `{"alg":"HS256","typ":"JWT"}`, claims in the order subject, iat, exp), without
 * its per-token WebCrypto key import and thread-pool job (issue 11: the engine's worker CPU per write,
 * a third of them Zephr's, went from 0.31 to 0.26 ms; docs/performance.md).
 */
function hs256Minter(jwt: ZephrConfig['jwt'], key: KeyObject): JwtMinter {
  const header = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url');
  return {
    alg: 'HS256',
    async mint(userId: string, now = Date.now()): Promise<string> {
      const iat = Math.floor(now / 1000);
      const claims: Record<string, unknown> = { [jwt.subjectClaim]: userId };
      claims.iat = iat;
      claims.exp = iat + jwt.ttlSeconds;
      const body = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
      return `${body}.${createHmac('sha256', key).update(body).digest('base64url')}`;
    },
  };
}
