import { jwtVerify, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { createJwtMinter } from '../../../../src/connectors/zephr/jwt.js';

// Issue 11: HS256 tokens are signed with node:crypto directly (no WebCrypto key import and thread-pool
// job per token). Zephr must see exactly the token jose's SignJWT made before.
describe('Zephr JWT, HS256', () => {
  const secret = 'a shared secret, ünïcode too';
  const now = Date.UTC(2026, 10, 30, 4, 0, 0, 123);

  for (const [subjectClaim, ttlSeconds] of [
    ['sub', 300],
    ['user_id', 60],
  ] as const) {
    it(`mints jose's token byte for byte (${subjectClaim}, ${ttlSeconds} s), which verifies`, async () => {
      const minter = createJwtMinter({ secret, subjectClaim, ttlSeconds } as Parameters<
        typeof createJwtMinter
      >[0]);
      expect(minter.alg).toBe('HS256');
      const token = await minter.mint('user:42/é', now);
      const iat = Math.floor(now / 1000);
      const jose = await new SignJWT({ [subjectClaim]: 'user:42/é' })
        .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
        .setIssuedAt(iat)
        .setExpirationTime(iat + ttlSeconds)
        .sign(new TextEncoder().encode(secret));
      expect(token).toBe(jose);
      const { payload, protectedHeader } = await jwtVerify(token, new TextEncoder().encode(secret), {
        currentDate: new Date(now),
      });
      expect(protectedHeader).toEqual({ alg: 'HS256', typ: 'JWT' });
      expect(payload).toEqual({ [subjectClaim]: 'user:42/é', iat, exp: iat + ttlSeconds });
    });
  }
});
