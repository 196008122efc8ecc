import { describe, expect, it } from 'vitest';
import { INVALID_JSON } from '../../../../src/sandbox/kit/index.js';
import { SunshineError } from '../../../../src/sandbox/sunshine/errors.js';
import { parseProfileBody } from '../../../../src/sandbox/sunshine/profile-body.js';

function rejects(body: unknown, mode: 'put' | 'patch'): string {
  try {
    parseProfileBody(body, mode);
  } catch (err) {
    expect(err).toBeInstanceOf(SunshineError);
    expect((err as SunshineError).status).toBe(400);
    return (err as SunshineError).title;
  }
  return expect.fail(`accepted ${JSON.stringify(body)}`);
}

const good = { attributes: { a: 1 }, identifiers: [{ type: 'email', value: 'A@x.io' }] };

describe('parseProfileBody', () => {
  it('accepts a full PUT body and ignores read-only fields', () => {
    expect(
      parseProfileBody(
        { profile: { ...good, name: 'Jane', source: 'x', type: 'y', user_id: 1, id: 'z' } },
        'put',
      ),
    ).toEqual({ name: 'Jane', ...good });
  });

  it('requires attributes and identifiers on PUT (003 JSON format: mandatory)', () => {
    expect(rejects({ profile: { identifiers: good.identifiers } }, 'put')).toMatch(/attributes/);
    expect(rejects({ profile: { attributes: {} } }, 'put')).toMatch(/identifiers/);
  });

  it('lets a PATCH omit both (001 example sends name and attributes only)', () => {
    expect(
      parseProfileBody({ profile: { name: 'Jane Doe', attributes: { saddle_height: '87cm' } } }, 'patch'),
    ).toEqual({
      name: 'Jane Doe',
      attributes: { saddle_height: '87cm' },
    });
    expect(parseProfileBody({ profile: {} }, 'patch')).toEqual({});
  });

  it('rejects wrong types in either mode', () => {
    for (const mode of ['put', 'patch'] as const) {
      rejects(undefined, mode);
      rejects(INVALID_JSON, mode);
      rejects([], mode);
      rejects({}, mode);
      rejects({ profile: 'x' }, mode);
      rejects({ profile: { ...good, attributes: [] } }, mode);
      rejects({ profile: { ...good, attributes: 'x' } }, mode);
      rejects({ profile: { ...good, identifiers: {} } }, mode);
      rejects({ profile: { ...good, identifiers: ['email'] } }, mode);
      rejects({ profile: { ...good, identifiers: [{ type: '', value: 'x' }] } }, mode);
      rejects({ profile: { ...good, identifiers: [{ type: 'email' }] } }, mode);
      rejects({ profile: { ...good, identifiers: [{ type: 'email', value: '' }] } }, mode);
      rejects({ profile: { ...good, identifiers: [{ type: 'email', value: true }] } }, mode);
      rejects({ profile: { ...good, name: 42 } }, mode);
    }
  });

  it("stores a numeric identifier value as its string (003's example sends phone_number 12345678)", () => {
    expect(
      parseProfileBody(
        { profile: { attributes: {}, identifiers: [{ type: 'phone_number', value: 12345678 }] } },
        'put',
      ).identifiers,
    ).toEqual([{ type: 'phone_number', value: '12345678' }]);
  });
});
