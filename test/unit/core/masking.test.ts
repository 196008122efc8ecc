import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { fingerprint, maskBody, maskDiff, maskEmail, maskName, maskPath } from '../../../src/core/masking.js';

describe('masking', () => {
  it('masks emails and names the documented way', () => {
    expect(maskEmail('jane.doe@example.com')).toBe('j***@example.com');
    expect(maskName('Jane')).toBe('J***');
    expect(maskName('Émile')).toBe('É***');
    expect(maskName('')).toBe('');
  });

  it('masks a diff by field name and by value shape, keeping ids and flags', () => {
    expect(
      maskDiff({
        'identifiers.email': { from: 'old@example.com', to: 'new@example.com' },
        name: { to: 'Jane Doe' },
        'attributes.first_name': { from: 'Jane' },
        'identifiers.external_id': { to: 'u-1' },
        other: { to: 'reach me at x@y.io' },
        contact: { to: 'x@y.io' },
        active: { to: true },
      }),
    ).toEqual({
      'identifiers.email': { from: 'o***@example.com', to: 'n***@example.com' },
      name: { to: 'J***' },
      'attributes.first_name': { from: 'J***' },
      'identifiers.external_id': { to: 'u-1' },
      other: { to: 'reach me at x@y.io' },
      contact: { to: 'x***@y.io' },
      active: { to: true },
    });
  });

  it('masks request bodies, including typed identifiers, and paths', () => {
    expect(
      maskBody({
        profile: {
          name: 'Jane Doe',
          identifiers: [
            { type: 'email', value: 'jane@example.com' },
            { type: 'external_id', value: 'u-1' },
          ],
          attributes: { first_name: 'Jane', plan: 'gold' },
        },
      }),
    ).toEqual({
      profile: {
        name: 'J***',
        identifiers: [
          { type: 'email', value: 'j***@example.com' },
          { type: 'external_id', value: 'u-1' },
        ],
        attributes: { first_name: 'J***', plan: 'gold' },
      },
    });
    expect(maskPath('/api/v2/user_profiles?identifier=identity:user:email:jane%40example.com')).toBe(
      '/api/v2/user_profiles?identifier=identity:user:email:j***%40example.com',
    );
    expect(maskPath('/api/v2/user_profiles?identifier=identity:user:external_id:u-1')).toBe(
      '/api/v2/user_profiles?identifier=identity:user:external_id:u-1',
    );
  });
});

describe('masking with a fingerprint (issue 12.7)', () => {
  const KEY = 'a'.repeat(64);
  const OTHER = 'b'.repeat(64);

  it('appends # and 4 hex characters to masked emails and names', () => {
    expect(maskEmail('u1@example.org', KEY)).toMatch(/^u\*\*\*@example\.org#[0-9a-f]{4}$/);
    expect(maskName('Jane', KEY)).toMatch(/^J\*\*\*#[0-9a-f]{4}$/);
    expect(maskName('', KEY)).toBe('');
    expect(fingerprint('u1@example.org', KEY)).toMatch(/^#[0-9a-f]{4}$/);
  });

  it('is stable for one value and key, differs between values, and depends on the key', () => {
    expect(maskEmail('u1@example.org', KEY)).toBe(maskEmail('u1@example.org', KEY));
    expect(maskEmail('u1@example.org', KEY)).not.toBe(maskEmail('u2@example.org', KEY));
    expect(maskEmail('u1@example.org', KEY)).not.toBe(maskEmail('u1@example.org', OTHER));
    // Bytes and their text give the same fingerprint only when they are the same key.
    expect(fingerprint('x', Buffer.from(KEY, 'utf8'))).toBe(fingerprint('x', KEY));
    // 1,000 different addresses sharing first letter and domain: collisions stay rare (16 bits).
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) seen.add(maskEmail(`u${i}@example.org`, KEY));
    expect(seen.size).toBeGreaterThan(985);
  });

  it('remembers recent fingerprints (issue 11): always the HMAC of the key asked for, past its bound too', () => {
    const hmac = (v: string, k: string | Uint8Array) =>
      `#${createHmac('sha256', k).update(v, 'utf8').digest('hex').slice(0, 4)}`;
    // Two keys in turn (each switch starts afresh), then more values than it keeps, then the first again.
    for (const k of [KEY, OTHER, KEY])
      expect(fingerprint('jane@example.org', k)).toBe(hmac('jane@example.org', k));
    const bytes = Buffer.from(OTHER, 'utf8');
    expect(fingerprint('jane@example.org', bytes)).toBe(hmac('jane@example.org', bytes));
    for (let i = 0; i < 5000; i++) fingerprint(`v${i}`, KEY);
    for (const i of [0, 900, 4999]) expect(fingerprint(`v${i}`, KEY)).toBe(hmac(`v${i}`, KEY));
    expect(fingerprint('v0', OTHER)).toBe(hmac('v0', OTHER));
  });

  it('shows an email change in a masked diff, and never the values or the key', () => {
    const masked = maskDiff({ 'identifiers.email': { from: 'u1@example.org', to: 'u2@example.org' } }, KEY);
    const e = masked['identifiers.email']!;
    expect(e.from).not.toBe(e.to);
    const text = JSON.stringify(masked);
    expect(text).not.toContain('u1@');
    expect(text).not.toContain('u2@');
    expect(text).not.toContain(KEY.slice(0, 8));
  });

  it('fingerprints in bodies, typed identifiers included; no key keeps the plain mask', () => {
    const body = { identifiers: [{ type: 'email', value: 'u1@example.org' }], first_name: 'Jane' };
    const masked = maskBody(body, '', KEY) as { identifiers: { value: string }[]; first_name: string };
    expect(masked.identifiers[0]!.value).toBe(maskEmail('u1@example.org', KEY));
    expect(masked.first_name).toBe(maskName('Jane', KEY));
    expect(maskBody(body)).toEqual({
      identifiers: [{ type: 'email', value: 'u***@example.org' }],
      first_name: 'J***',
    });
  });
});
