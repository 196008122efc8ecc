/** One entry of a profile's `identifiers` array (003, "Identifiers array"). */
export interface Identifier {
  type: string;
  value: string;
}

/**
 * The standard identifier types (003, "Standard identifiers"). All but `external_id` become identities
 * of the Zendesk user; `external_id` becomes the user's `external_id` attribute.
 */
export const STANDARD_IDENTIFIER_TYPES = [
  'email',
  'external_id',
  'phone_number',
  'twitter',
  'facebook',
  'sdk',
] as const;

const STANDARD = new Set<string>(STANDARD_IDENTIFIER_TYPES);

export function isStandardIdentifierType(type: string): boolean {
  return STANDARD.has(type);
}

/**
 * "When the value for identifier types "email" and "twitter" are added or modified, any upper case
 * letters are automatically converted to lower case." (003)
 */
export function normalizeIdentifierValue(type: string, value: string): string {
  return type === 'email' || type === 'twitter' ? value.toLowerCase() : value;
}

export function normalizeIdentifier(identifier: Identifier): Identifier {
  return { type: identifier.type, value: normalizeIdentifierValue(identifier.type, identifier.value) };
}

/** Equality key of an identifier within one profile (type and normalised value). */
export function identifierKey(identifier: Identifier): string {
  return `${identifier.type}\u0000${normalizeIdentifierValue(identifier.type, identifier.value)}`;
}

/** Normalises and drops duplicates, keeping the first occurrence's position. */
export function dedupeIdentifiers(identifiers: readonly Identifier[]): Identifier[] {
  const seen = new Set<string>();
  const out: Identifier[] = [];
  for (const identifier of identifiers) {
    const key = identifierKey(identifier);
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(normalizeIdentifier(identifier));
  }
  return out;
}
