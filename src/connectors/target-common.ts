import { SyncError } from '../core/errors.js';
import type { FieldMap, RequestRecord, RequestScope, SourceUser } from '../core/types.js';
import type { HttpResponse } from './http.js';

/**
 * What a target connector needs from the compiled mapping (src/config/mapping.ts `compileMappings`):
 * the field names it may produce (the "managed" fields) and the function that produces them.
 * Structural, so the connectors do not depend on how the mapping is compiled.
 */
export interface ConnectorMapping {
  /** Every FieldMap key this mapping can produce, for every user. */
  readonly fields: readonly string[];
  map(user: SourceUser): FieldMap;
  /** The compiled mapping's digest (src/config/mapping.ts); a hand-made mapping has none. */
  readonly digest?: string;
}

/**
 * Collects the RequestRecords of every response of one write (retries included), and carries the job
 * attempt's scope its requests are sent with (`HttpRequest.scope`).
 */
export class RequestLog {
  readonly records: RequestRecord[] = [];
  constructor(readonly scope?: RequestScope) {}
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

/**
 * The error for a read that answered 200 but whose body cannot be read as the vendor's JSON (empty,
 * not JSON, truncated: a proxy's or captive portal's page, a cut connection). Issue 8.2: such a read
 * must never stand for "empty", or the PUT that follows would erase what other systems wrote. It is
 * transient: the job retries with backoff and nothing is written meanwhile.
 */
export function unreadableRead(
  target: 'sunshine' | 'zephr' | 'prelude',
  res: HttpResponse,
  userId: string | undefined,
  expected: string,
): SyncError {
  const type = res.headers['content-type'];
  const contentType = (Array.isArray(type) ? type[0] : type) ?? 'none';
  const what = res.body === undefined ? 'empty or not JSON' : 'JSON of another shape';
  return new SyncError(
    'transient',
    `${target}: GET ${res.path}${userId === undefined ? '' : ` (user ${userId})`} answered ${res.status} with a body that is ${what} (content-type ${contentType.slice(0, 60)}), expected ${expected}; nothing written, retried later`,
    { target, userId, status: res.status, vendorCode: 'unreadable_body', requestId: res.requestId },
  );
}

/**
 * Why `value` cannot be one path segment of a request URL, or undefined when it can. encodeURIComponent
 * escapes `/`, `?`, `#` and `%`, but leaves `.` alone, and URL parsers (undici's included, and every
 * proxy) resolve the segments `.` and `..` however they are sent: `PATCH .../users/../profile` would
 * address another resource. An empty segment (`users//profile`) is another path too. Issue 8.9.
 */
export function unsafePathSegment(value: string): string | undefined {
  if (value === '') return 'is empty';
  if (value === '.' || value === '..') return `is '${value}', which a URL resolves as a path step`;
  return undefined;
}
