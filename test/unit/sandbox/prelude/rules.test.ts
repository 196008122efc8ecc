import { describe, expect, it } from 'vitest';
import { preludeErrorForStatus } from '../../../../src/sandbox/prelude/errors.js';
import { inUnknownShare } from '../../../../src/sandbox/prelude/known-users.js';
import { checkPatchRequest } from '../../../../src/sandbox/prelude/patch-request.js';
import { isReservedProfileKey } from '../../../../src/sandbox/prelude/reserved-keys.js';
import { PreludeState } from '../../../../src/sandbox/prelude/state.js';

describe('reserved profile keys (our documented list)', () => {
  it('reserves the JWT registered claims, the ids and timestamps, and the prelude_ and _ prefixes', () => {
    for (const key of ['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti', 'id', 'user_id', 'app_id']) {
      expect(isReservedProfileKey(key), key).toBe(true);
    }
    for (const key of ['created_at', 'updated_at', 'prelude_role', 'prelude_', '_x', '_']) {
      expect(isReservedProfileKey(key), key).toBe(true);
    }
    for (const key of ['first_name', 'email', 'subject', 'ID', 'Sub', 'x_', 'preludex', 'my_id', '']) {
      expect(isReservedProfileKey(key), key).toBe(false);
    }
  });

  it('names the reserved key and refuses the body only when all values are strings', () => {
    expect(checkPatchRequest({ profile: { first_name: 'a', exp: '1' } })).toEqual({
      ok: false,
      code: 'reserved_profile_key',
      key: 'exp',
    });
    expect(checkPatchRequest({ profile: { exp: 1 } })).toEqual({ ok: false, code: 'invalid_request' });
  });
});

describe('the unknown-user rule', () => {
  const ids = Array.from({ length: 20_000 }, (_, i) => `user-${String(i + 1).padStart(6, '0')}`);

  it('puts about 10% of ids in the unknown share by default, deterministically', () => {
    const unknown = ids.filter((id) => inUnknownShare(1, id, 0.1));
    expect(unknown.length / ids.length).toBeGreaterThan(0.085);
    expect(unknown.length / ids.length).toBeLessThan(0.115);
    expect(ids.filter((id) => inUnknownShare(1, id, 0.1))).toEqual(unknown);
    // Another seed, another set.
    const other = ids.filter((id) => inUnknownShare(2, id, 0.1));
    expect(other).not.toEqual(unknown);
  });

  it('0 knows everyone, 1 no one', () => {
    expect(ids.some((id) => inUnknownShare(1, id, 0))).toBe(false);
    expect(ids.every((id) => inUnknownShare(1, id, 1))).toBe(true);
  });
});

describe('PreludeState', () => {
  it('merges keys: sent keys replace, others stay, "" is kept as an empty string', () => {
    const s = new PreludeState({ unknownShare: 0 });
    s.patchProfile('app_sandbox', 'u1', { first_name: 'Jane', last_name: 'Smith' });
    s.patchProfile('app_sandbox', 'u1', { last_name: '', email: 'j@x.io' });
    expect(s.getProfile('app_sandbox', 'u1')).toEqual({ first_name: 'Jane', last_name: '', email: 'j@x.io' });
  });

  it('knows users by the rule, by a custom predicate, and by explicit overrides (which win)', () => {
    const ruled = new PreludeState({ seed: 1, unknownShare: 0.1 });
    const id = Array.from({ length: 1000 }, (_, i) => `u${i}`).find((u) => inUnknownShare(1, u, 0.1))!;
    expect(ruled.isKnown('app_sandbox', id)).toBe(false);
    expect(ruled.isKnown('app_sandbox', 'u-known-surely-not-in-share')).toBe(
      !inUnknownShare(1, 'u-known-surely-not-in-share', 0.1),
    );
    ruled.setKnown('app_sandbox', id, true);
    expect(ruled.isKnown('app_sandbox', id)).toBe(true);
    ruled.setKnown('app_sandbox', id, false);
    expect(ruled.isKnown('app_sandbox', id)).toBe(false);

    const custom = new PreludeState({ isKnownUser: (userId) => userId.startsWith('src-') });
    expect(custom.isKnown('app_sandbox', 'src-1')).toBe(true);
    expect(custom.isKnown('app_sandbox', 'other')).toBe(false);
    expect(custom.isKnown('no_app', 'src-1')).toBe(false);
    expect(custom.setKnown('no_app', 'src-1', true)).toBe(false);
  });

  it('has the configured apps with their session setting; reset restores them', () => {
    const s = new PreludeState({ appIds: ['a', 'b'], sessionDisabledApps: ['b'] });
    expect(s.hasApp('a') && s.sessionEnabled('a')).toBe(true);
    expect(s.hasApp('b') && !s.sessionEnabled('b')).toBe(true);
    expect(s.hasApp('app_sandbox')).toBe(false);
    s.setApp('a', { sessionEnabled: false });
    s.setApp('c');
    s.patchProfile('a', 'u', { k: 'v' });
    expect(s.sessionEnabled('a')).toBe(false);
    expect(s.hasApp('c') && s.sessionEnabled('c')).toBe(true);
    s.reset();
    expect(s.sessionEnabled('a')).toBe(true);
    expect(s.hasApp('c')).toBe(false);
    expect(s.getProfile('a', 'u')).toBeUndefined();
  });
});

describe('preludeErrorForStatus (errors the kit produces)', () => {
  it('names each status in the {code, status, message} shape, keeping the HTTP status', () => {
    expect(preludeErrorForStatus(413)).toEqual({
      status: 413,
      body: {
        code: 'payload_too_large',
        status: 'payload_too_large',
        message: 'The request body is too large.',
      },
    });
    expect(preludeErrorForStatus(404).body.code).toBe('not_found');
    expect(preludeErrorForStatus(503).body).toMatchObject({
      code: 'service_unavailable',
      status: 'service_unavailable',
    });
    expect(preludeErrorForStatus(504)).toMatchObject({ status: 504, body: { code: 'internal_error' } });
    expect(preludeErrorForStatus(418)).toMatchObject({ status: 418, body: { code: 'invalid_request' } });
  });
});
