import { describe, expect, it } from 'vitest';
import { maskBody, maskDiff, maskEmail, maskName, maskPath } from '../../../src/core/masking.js';

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
