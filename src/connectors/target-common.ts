import type { HttpResponse } from './http.js';
import type { FieldMap, RequestRecord, SourceUser } from './types.js';

/**
 * What a target connector needs from the compiled mapping (src/pipeline/mapping.ts `compileMappings`):
 * the field names it may produce (the "managed" fields) and the function that produces them.
 * Structural, so the connectors do not depend on how the mapping is compiled.
 */
export interface ConnectorMapping {
  /** Every FieldMap key this mapping can produce, for every user. */
  readonly fields: readonly string[];
  map(user: SourceUser): FieldMap;
}

/** Collects the RequestRecords of every response of one write (retries included). */
export class RequestLog {
  readonly records: RequestRecord[] = [];
  add(res: HttpResponse): HttpResponse {
    this.records.push(...res.records);
    return res;
  }
}

/** `{...}` JSON object check (not an array, not null). */
export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Every field name profile-sync manages for a user: the mapping's fields plus those in previous and next. */
export function managedFields(
  fields: readonly string[],
  previous: FieldMap | null,
  next: FieldMap | null,
): Set<string> {
  return new Set([...fields, ...Object.keys(previous ?? {}), ...Object.keys(next ?? {})]);
}
