import { describe, expect, it } from 'vitest';
import { deriveProfileName } from '../../../../src/sandbox/sunshine/profile-name.js';

const id = (type: string, value: string) => ({ type, value });

describe('deriveProfileName (003 name table)', () => {
  it('names by each standard type when it is the only one', () => {
    expect(deriveProfileName([id('email', 'jane@example.com')])).toBe('jane@example.com');
    expect(deriveProfileName([id('external_id', 'FooBar123')])).toBe('User FooBar123');
    expect(deriveProfileName([id('phone_number', '0411 555 666')])).toBe('User 0411 555 666');
    expect(deriveProfileName([id('twitter', 'FooBar')])).toBe('Twitter user FooBar');
    expect(deriveProfileName([id('facebook', 'FooBar')])).toBe('Facebook user FooBar');
    expect(deriveProfileName([id('sdk', 'FooBarSDK')])).toBe('SDK user FooBarSDK');
  });

  it('follows the "If type not present" column: email, external_id, phone_number, twitter, facebook, sdk', () => {
    const all = [
      id('sdk', 's'),
      id('facebook', 'f'),
      id('twitter', 't'),
      id('phone_number', 'p'),
      id('external_id', 'x'),
      id('email', 'e@x.io'),
    ];
    expect(deriveProfileName(all)).toBe('e@x.io');
    expect(deriveProfileName(all.slice(0, 5))).toBe('User x');
    expect(deriveProfileName(all.slice(0, 4))).toBe('User p');
    expect(deriveProfileName(all.slice(0, 3))).toBe('Twitter user t');
    expect(deriveProfileName(all.slice(0, 2))).toBe('Facebook user f');
    expect(deriveProfileName(all.slice(0, 1))).toBe('SDK user s');
  });

  it('falls back to the first identifier as "{type} user {value}"', () => {
    expect(deriveProfileName([id('Shado', 'FooBar'), id('member_id', '1')])).toBe('Shado user FooBar');
    expect(deriveProfileName([id('member_id', '1'), id('sdk', 'z')])).toBe('SDK user z');
    expect(deriveProfileName([])).toBeUndefined();
  });

  it('uses the first identifier of the winning type', () => {
    expect(deriveProfileName([id('email', 'a@x.io'), id('email', 'b@x.io')])).toBe('a@x.io');
  });
});
