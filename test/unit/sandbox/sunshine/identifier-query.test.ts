import { describe, expect, it } from 'vitest';
import { SunshineError } from '../../../../src/sandbox/sunshine/errors.js';
import { parseIdentifierQuery } from '../../../../src/sandbox/sunshine/identifier-query.js';

function status400(fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SunshineError);
    expect((err as SunshineError).status).toBe(400);
    return;
  }
  expect.fail('expected a 400');
}

describe('parseIdentifierQuery (003, "Identifier queries")', () => {
  it("parses 003's examples", () => {
    expect(parseIdentifierQuery('mysystem:customer:system_id:abc123')).toEqual({
      source: 'mysystem',
      type: 'customer',
      identifierType: 'system_id',
      identifierValue: 'abc123',
    });
    expect(parseIdentifierQuery('mycontacts:default:email:jane@example.com').identifierValue).toBe(
      'jane@example.com',
    );
  });

  it('splits on the first three colons only: the value may contain colons', () => {
    expect(parseIdentifierQuery('crm:contact:urn:urn:isbn:0451450523')).toEqual({
      source: 'crm',
      type: 'contact',
      identifierType: 'urn',
      identifierValue: 'urn:isbn:0451450523',
    });
    expect(parseIdentifierQuery('a:b:c::').identifierValue).toBe(':');
  });

  it('answers 400 for a missing or malformed query', () => {
    status400(() => parseIdentifierQuery(null));
    status400(() => parseIdentifierQuery(''));
    status400(() => parseIdentifierQuery('source:type:email'));
    status400(() => parseIdentifierQuery('nocolons'));
    status400(() => parseIdentifierQuery(':type:email:a@b.c'));
    status400(() => parseIdentifierQuery('source::email:a@b.c'));
    status400(() => parseIdentifierQuery('source:type::a@b.c'));
    status400(() => parseIdentifierQuery('source:type:email:'));
  });
});
