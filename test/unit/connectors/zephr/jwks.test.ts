import { generateKeyPairSync } from 'node:crypto';
import { Writable } from 'node:stream';
import { decodeProtectedHeader } from 'jose';
import { describe, expect, it } from 'vitest';
import { maskConfig } from '../../../../src/commands/config.js';
import { loadConfig } from '../../../../src/config/load.js';
import type { ZephrConfig } from '../../../../src/config/schema.js';
import { zephrJwks } from '../../../../src/connectors/zephr/jwks.js';
import { createJwtMinter } from '../../../../src/connectors/zephr/jwt.js';
import { ConfigError } from '../../../../src/core/config-error.js';
import { createLogger } from '../../../../src/log.js';

const pem = (type: 'rsa' | 'ec' | 'ed25519') =>
  (type === 'rsa'
    ? generateKeyPairSync('rsa', { modulusLength: 2048 })
    : type === 'ec'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : generateKeyPairSync('ed25519')
  ).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
const RSA = pem('rsa');
const EC = pem('ec');

const jwt = (over: Partial<ZephrConfig['jwt']>): ZephrConfig['jwt'] => ({
  subjectClaim: 'sub',
  header: 'authorization',
  ttlSeconds: 300,
  ...over,
});
const BASE = { SOURCE_URL: 'http://127.0.0.1:9', ZEPHR_URL: 'http://127.0.0.1:9', ZEPHR_APP_ID: 'app' };

describe('zephr JWK set (issue 12.6)', () => {
  it('publishes the public part of the current key with its kid, and the next key beside it', async () => {
    const set = (await zephrJwks(jwt({ privateKey: RSA, keyId: 'a', nextPrivateKey: EC, nextKeyId: 'b' })))!;
    expect(set.keys).toHaveLength(2);
    expect(set.keys[0]).toMatchObject({ kty: 'RSA', alg: 'RS256', kid: 'a', use: 'sig' });
    expect(set.keys[1]).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', kid: 'b', use: 'sig' });
    for (const k of set.keys) expect(Object.keys(k)).not.toContain('d');
    expect(JSON.stringify(set)).not.toContain('"d"');
  });

  it('HS256 has no JWK set', async () => {
    expect(await zephrJwks(jwt({ secret: 'a-shared-secret' }))).toBeNull();
  });

  it('a kid not configured is the RFC 7638 thumbprint, in the set and in every token', async () => {
    const config = jwt({ privateKey: EC });
    const set = (await zephrJwks(config))!;
    const token = await createJwtMinter(config).mint('u-1');
    expect(decodeProtectedHeader(token).kid).toBe(set.keys[0]!.kid);
    expect(set.keys[0]!.kid).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('tokens are signed with the current key only, during a rotation too', async () => {
    const token = await createJwtMinter(
      jwt({ privateKey: RSA, keyId: 'a', nextPrivateKey: EC, nextKeyId: 'b' }),
    ).mint('u');
    expect(decodeProtectedHeader(token)).toMatchObject({ alg: 'RS256', kid: 'a' });
  });

  it('refuses a bad or clashing next key naming the variable, without quoting the key', async () => {
    const bad = () => createJwtMinter(jwt({ privateKey: RSA, nextPrivateKey: 'garbage' }));
    expect(bad).toThrow(ConfigError);
    expect(bad).toThrow(/^ZEPHR_JWT_NEXT_PRIVATE_KEY: not a readable PEM/);
    expect(() => createJwtMinter(jwt({ privateKey: RSA, nextPrivateKey: pem('ed25519') }))).toThrow(
      /^ZEPHR_JWT_NEXT_PRIVATE_KEY: a ed25519 key cannot sign/,
    );
    const sameKid = zephrJwks(
      jwt({ privateKey: RSA, nextPrivateKey: pem('rsa'), keyId: 'x', nextKeyId: undefined }),
    );
    await expect(sameKid).resolves.toBeTruthy();
    // Same key under two names: the thumbprints clash.
    await expect(zephrJwks(jwt({ privateKey: RSA, nextPrivateKey: `${RSA}\n` }))).rejects.toThrow(
      /ZEPHR_JWT_NEXT_PRIVATE_KEY: the next key has the kid of the current one/,
    );
  });

  it('config: the next key needs a PEM current key, its kid needs it, kids differ (exit 2 naming the variable)', () => {
    const err = (env: Record<string, string>) => {
      try {
        loadConfig({ ...BASE, ...env });
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        return (e as Error).message;
      }
      return '';
    };
    expect(err({ ZEPHR_JWT_SECRET: 'shared', ZEPHR_JWT_NEXT_PRIVATE_KEY: EC })).toContain(
      'ZEPHR_JWT_NEXT_PRIVATE_KEY: needs ZEPHR_JWT_PRIVATE_KEY',
    );
    expect(err({ ZEPHR_JWT_PRIVATE_KEY: RSA, ZEPHR_JWT_NEXT_KEY_ID: 'b' })).toContain(
      'ZEPHR_JWT_NEXT_KEY_ID: set only together with ZEPHR_JWT_NEXT_PRIVATE_KEY',
    );
    expect(
      err({
        ZEPHR_JWT_PRIVATE_KEY: RSA,
        ZEPHR_JWT_KEY_ID: 'a',
        ZEPHR_JWT_NEXT_PRIVATE_KEY: EC,
        ZEPHR_JWT_NEXT_KEY_ID: 'a',
      }),
    ).toContain('ZEPHR_JWT_NEXT_KEY_ID: must differ from ZEPHR_JWT_KEY_ID');
    expect(err({ ZEPHR_JWT_PRIVATE_KEY: RSA, ZEPHR_JWT_NEXT_PRIVATE_KEY: RSA })).toContain(
      'ZEPHR_JWT_NEXT_PRIVATE_KEY: the same key',
    );
    for (const m of [err({ ZEPHR_JWT_SECRET: 'shared', ZEPHR_JWT_NEXT_PRIVATE_KEY: EC })])
      expect(m).not.toContain('BEGIN');
    const ok = loadConfig({
      ...BASE,
      ZEPHR_JWT_PRIVATE_KEY: RSA,
      ZEPHR_JWT_NEXT_PRIVATE_KEY: EC,
      ZEPHR_JWT_NEXT_KEY_ID: 'b',
    });
    expect(ok.targets.zephr!.jwt).toMatchObject({ nextPrivateKey: EC, nextKeyId: 'b' });
  });

  it('the next key is a secret: censored in log lines and in `config check`', () => {
    const config = loadConfig({ ...BASE, ZEPHR_JWT_PRIVATE_KEY: RSA, ZEPHR_JWT_NEXT_PRIVATE_KEY: EC });
    const lines: string[] = [];
    const logger = createLogger({
      destination: new Writable({
        write(c, _e, cb) {
          lines.push(String(c));
          cb();
        },
      }),
    });
    logger.info({ config }, 'config');
    logger.info({ jwt: config.targets.zephr!.jwt }, 'jwt');
    const body = EC.split('\n')[1]!;
    expect(lines.join('')).not.toContain(body);
    expect(JSON.stringify(maskConfig(config))).not.toContain(body);
    expect((maskConfig(config) as typeof config).targets.zephr!.jwt.nextPrivateKey).toBe('[set]');
  });
});
