import type { FieldDiff, FieldValue } from './types.js';

/**
 * PII masking for run records, reports, `history` and plan files. Emails keep their first character
 * and domain (`j***@example.com`), names their first character (`J***`): enough for an operator to
 * recognise a record, not enough to read a customer list out of Redis. Everything else (ids, flags)
 * is kept, because reports are useless without them.
 */

const EMAIL_RE = /^[^@\s]+@[^@\s]+$/;
const EMAIL_KEY_RE = /e-?mail/i;
const NAME_KEY_RE = /name/i;

export function maskEmail(value: string): string {
  const at = value.lastIndexOf('@');
  if (at <= 0) return maskName(value);
  return `${[...value.slice(0, at)][0]}***${value.slice(at)}`;
}

export function maskName(value: string): string {
  if (value === '') return value;
  return `${[...value][0]}***`;
}

/** The last segment of a dotted field name: `attributes.first_name` -> `first_name`. */
function leaf(key: string): string {
  const dot = key.lastIndexOf('.');
  return dot === -1 ? key : key.slice(dot + 1);
}

/** Masks one value given the field it belongs to. */
export function maskValue(key: string, value: FieldValue): FieldValue;
export function maskValue(key: string, value: unknown): unknown;
export function maskValue(key: string, value: unknown): unknown {
  if (typeof value !== 'string') return value;
  const k = leaf(key);
  if (EMAIL_KEY_RE.test(k) || EMAIL_RE.test(value.trim())) return maskEmail(value);
  if (NAME_KEY_RE.test(k)) return maskName(value);
  return value;
}

export function maskDiff(diff: FieldDiff): FieldDiff {
  const out: FieldDiff = {};
  for (const [field, change] of Object.entries(diff)) {
    const entry: { from?: FieldValue; to?: FieldValue } = {};
    if (change.from !== undefined) entry.from = maskValue(field, change.from);
    if (change.to !== undefined) entry.to = maskValue(field, change.to);
    out[field] = entry;
  }
  return out;
}

/**
 * Masks a request body (any JSON): keys named like emails or names, and any string that looks like
 * an email wherever it sits (Sunshine identifiers are `{type: 'email', value: ...}`).
 */
export function maskBody(body: unknown, key = ''): unknown {
  if (Array.isArray(body)) return body.map((v) => maskBody(v, key));
  if (body !== null && typeof body === 'object') {
    const obj = body as Record<string, unknown>;
    // `{type: 'email', value: 'x'}` (Sunshine identifiers): the value is an email whatever it looks like.
    const typed = typeof obj.type === 'string' ? obj.type : undefined;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(obj)) {
      out[k] = k === 'value' && typed !== undefined ? maskValue(typed, v) : maskBody(v, k);
    }
    return out;
  }
  return maskValue(key, body);
}

/** Masks an identifier query or path segment that embeds an email (`.../email:j.doe@x.com`). */
export function maskPath(path: string): string {
  return path.replace(/([^/:=?&%]+)(@|%40)([^/:?&\s]+)/g, (_m, local: string, at: string, domain: string) => {
    return `${[...decodeURIComponentSafe(local)][0] ?? ''}***${at}${domain}`;
  });
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
