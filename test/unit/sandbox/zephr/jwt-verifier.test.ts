import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { JwtVerifier } from '../../../../src/sandbox/zephr/jwt-verifier.js';

const secret = 'unit-test-secret-unit-test-secret';
const sign = (claims: Record<string, unknown>) =>
  new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(secret));

describe('JwtVerifier', () => {
  it('still expires a cached token on time', async () => {
    let now = 1_700_000_000_000;
    const v = new JwtVerifier(secret, undefined, () => now);
    const token = await sign({ sub: 'alice', exp: now / 1000 + 60 });
    expect(await v.verify(token)).toEqual({ sub: 'alice', exp: now / 1000 + 60, key: 'hs256' });
    now += 59_000;
    expect(await v.verify(token)).toMatchObject({ sub: 'alice' });
    now += 2_000;
    expect(await v.verify(token)).toBeUndefined();
  });

  it('requires a non-empty sub and an exp', async () => {
    const v = new JwtVerifier(secret);
    const exp = Math.floor(Date.now() / 1000) + 60;
    expect(await v.verify(await sign({ sub: '', exp }))).toBeUndefined();
    expect(await v.verify(await sign({ exp }))).toBeUndefined();
    expect(await v.verify(await sign({ sub: 'a' }))).toBeUndefined();
    expect(await v.verify('')).toBeUndefined();
  });
});
