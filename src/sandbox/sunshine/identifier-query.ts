import { SunshineError } from './errors.js';

/** A parsed identifier query, `<profile_source>:<profile_type>:<identifier_key>:<identifier_value>` (003). */
export interface IdentifierQuery {
  source: string;
  type: string;
  identifierType: string;
  identifierValue: string;
}

/**
 * Parses the `identifier` query parameter (already percent-decoded by URLSearchParams, so `+` is a
 * space and a literal plus must be sent as `%2B`). Only the first three `:` delimit: the value may
 * contain `:` itself (a URN, a time, an IPv6 address). Any empty part is malformed: 400.
 */
export function parseIdentifierQuery(raw: string | null): IdentifierQuery {
  if (raw === null || raw === '') {
    throw new SunshineError(400, 'The identifier query parameter is required');
  }
  const first = raw.indexOf(':');
  const second = first < 0 ? -1 : raw.indexOf(':', first + 1);
  const third = second < 0 ? -1 : raw.indexOf(':', second + 1);
  if (third < 0) {
    throw new SunshineError(
      400,
      'Invalid identifier query: expected source:type:identifier_type:identifier_value',
    );
  }
  const query: IdentifierQuery = {
    source: raw.slice(0, first),
    type: raw.slice(first + 1, second),
    identifierType: raw.slice(second + 1, third),
    identifierValue: raw.slice(third + 1),
  };
  if (!query.source || !query.type || !query.identifierType || !query.identifierValue) {
    throw new SunshineError(400, 'Invalid identifier query: every part must be non-empty');
  }
  return query;
}
