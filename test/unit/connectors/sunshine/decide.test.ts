import { describe, expect, it } from 'vitest';
import { decideWrite } from '../../../../src/connectors/sunshine/decide.js';
import {
  derivedName,
  fieldsFromProfile,
  mergeForPut,
  sameContent,
} from '../../../../src/connectors/sunshine/payload.js';
import type { FieldMap } from '../../../../src/core/types.js';

const base: FieldMap = {
  name: 'Jane Doe',
  'identifiers.external_id': 'u1',
  'identifiers.email': 'jane@example.com',
  'attributes.first_name': 'Jane',
  'attributes.last_name': 'Doe',
};
const without = (k: string): FieldMap => Object.fromEntries(Object.entries(base).filter(([f]) => f !== k));

describe('decideWrite: the seed 001 decision table', () => {
  it.each([
    ['never written', null, base, 'fresh'],
    ['nothing changed', base, { ...base }, 'unchanged'],
    ['name changed', base, { ...base, name: 'Janet Doe' }, 'patch'],
    ['attribute changed', base, { ...base, 'attributes.first_name': 'Janet' }, 'patch'],
    ['attribute added', without('attributes.last_name'), base, 'patch'],
    ['email changed', base, { ...base, 'identifiers.email': 'j@new.example' }, 'replace'],
    ['email added', without('identifiers.email'), base, 'replace'],
    ['email removed', base, without('identifiers.email'), 'replace'],
    ['attribute removed', base, without('attributes.last_name'), 'replace'],
    ['name removed', base, without('name'), 'replace'],
  ] as const)('%s -> %s', (_label, previous, next, kind) => {
    expect(decideWrite(previous, next).kind).toBe(kind);
  });

  it('a patch carries only the changed fields', () => {
    expect(decideWrite(base, { ...base, 'attributes.first_name': 'Janet', name: 'Janet Doe' })).toEqual({
      kind: 'patch',
      changed: { 'attributes.first_name': 'Janet', name: 'Janet Doe' },
    });
  });
});

describe('Sunshine payload helpers', () => {
  it('derivedName follows seed 003: email, else "User " + external id, else "{type} user {value}"', () => {
    expect(
      derivedName([
        { type: 'external_id', value: 'x' },
        { type: 'email', value: 'a@b.c' },
      ]),
    ).toBe('a@b.c');
    expect(derivedName([{ type: 'external_id', value: '42' }])).toBe('User 42');
    expect(derivedName([{ type: 'shado', value: 'FooBar' }])).toBe('shado user FooBar');
    expect(derivedName([])).toBeUndefined();
  });

  it('mergeForPut keeps an unmanaged name and drops every value of a managed identifier type', () => {
    const body = mergeForPut(
      {
        name: 'Theirs',
        identifiers: [
          { type: 'email', value: 'a@x.y' },
          { type: 'email', value: 'b@x.y' },
          { type: 'phone_number', value: 612345 },
        ],
        attributes: { membership: 'gold', first_name: 'Old' },
      },
      ['identifiers.email', 'attributes.first_name'],
      { 'identifiers.email': 'c@x.y', 'attributes.first_name': 'New' },
    );
    expect(body).toEqual({
      profile: {
        name: 'Theirs',
        identifiers: [
          { type: 'phone_number', value: 612345 },
          { type: 'email', value: 'c@x.y' },
        ],
        attributes: { membership: 'gold', first_name: 'New' },
      },
    });
  });

  it('sameContent compares identifiers as a set and treats a derived name as no name', () => {
    const current = {
      name: 'User u1',
      identifiers: [{ type: 'external_id', value: 'u1' }],
      attributes: { a: 1 },
    };
    expect(
      sameContent(current, {
        profile: { identifiers: [{ type: 'external_id', value: 'u1' }], attributes: { a: 1 } },
      }),
    ).toBe(true);
    expect(
      sameContent(
        { ...current, name: 'Jane' },
        { profile: { identifiers: [{ type: 'external_id', value: 'u1' }], attributes: { a: 1 } } },
      ),
    ).toBe(false);
    expect(
      sameContent(current, {
        profile: { identifiers: [{ type: 'external_id', value: 'u1' }], attributes: { a: 2 } },
      }),
    ).toBe(false);
    expect(
      sameContent(current, { profile: { name: 'User u1', identifiers: [], attributes: { a: 1 } } }),
    ).toBe(false);
  });

  it('fieldsFromProfile reads only the fields asked for, identifier values as strings', () => {
    expect(
      fieldsFromProfile(
        {
          name: 'Jane',
          identifiers: [{ type: 'phone_number', value: 12 }],
          attributes: { x: true, nested: { no: 1 } },
        },
        ['name', 'identifiers.phone_number', 'attributes.x', 'attributes.nested', 'attributes.absent'],
      ),
    ).toEqual({ name: 'Jane', 'identifiers.phone_number': '12', 'attributes.x': true });
  });
});
