import type { Identifier } from './identifiers.js';

/**
 * 003's name table, read with its "If type not present" column: email is used first; external_id when
 * there is no email; phone_number when there is no external_id either; then twitter, facebook, sdk.
 * The first identifier of the winning type is used.
 */
const PRECEDENCE: readonly [type: string, name: (value: string) => string][] = [
  ['email', (v) => v],
  ['external_id', (v) => `User ${v}`],
  ['phone_number', (v) => `User ${v}`],
  ['twitter', (v) => `Twitter user ${v}`],
  ['facebook', (v) => `Facebook user ${v}`],
  ['sdk', (v) => `SDK user ${v}`],
];

/**
 * The profile name Zendesk derives when none is given (003). "If none of the listed identifier types are
 * present, the first identifier present in the identifiers object is used. The profile name is set as
 * the identifier's "{type} user {value}"." Undefined only for a profile without identifiers.
 */
export function deriveProfileName(identifiers: readonly Identifier[]): string | undefined {
  for (const [type, name] of PRECEDENCE) {
    const found = identifiers.find((identifier) => identifier.type === type);
    if (found) return name(found.value);
  }
  const first = identifiers[0];
  return first ? `${first.type} user ${first.value}` : undefined;
}
