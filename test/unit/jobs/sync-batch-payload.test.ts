import { describe, expect, it } from 'vitest';
import { ZodError } from 'zod';
import { parsePayload, payloadSchema } from '../../../jobs/sync-batch.js';

// Issue 11: the batch payload checked by hand when it has the scan's shape; the schema decides the rest.
describe('sync-batch parsePayload', () => {
  const good = {
    runId: '20261130T000000Z-abcd',
    target: 'zephr',
    full: true,
    users: {
      'sync-zephr-r-1': { id: 'u1', firstName: 'Jane', lastName: null, email: 'j@example.org' },
      'sync-zephr-r-2': { id: 'u:2', extra: 'dropped' },
    },
    extra: 1,
  };

  it('gives what the schema gives: unknown keys dropped, names kept or absent, full defaulted', () => {
    expect(parsePayload(good)).toStrictEqual(payloadSchema.parse(good));
    const { full: _full, ...noFull } = good;
    expect(parsePayload(noFull)).toStrictEqual(payloadSchema.parse(noFull));
    expect(parsePayload(noFull).full).toBe(false);
    expect(Object.keys(parsePayload(good).users['sync-zephr-r-2']!)).toEqual(['id']);
  });

  it('throws the schema error for anything else', () => {
    const bad = [
      null,
      [],
      { ...good, runId: '' },
      { ...good, target: 'nope' },
      { ...good, full: 'yes' },
      { ...good, users: [] },
      { ...good, users: { a: { id: '' } } },
      { ...good, users: { a: { id: 'u', email: 3 } } },
      { ...good, users: { a: 'u' } },
    ];
    for (const b of bad) expect(() => parsePayload(b)).toThrow(ZodError);
  });
});
