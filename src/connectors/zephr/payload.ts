import type { FieldMap } from '../../core/types.js';

/**
 * Seed 000: `PUT /blaize/profile/{appId}` "will create an Extended Profile for the App ID if one did not
 * exist already, or overwrite an existing Extended Profile". The document is replaced whole, so the
 * body must carry every key other systems keep there: current document minus the keys profile-sync
 * manages, plus the managed keys it wants now.
 */
export function mergeDocument(
  current: Record<string, unknown> | null,
  managed: Iterable<string>,
  next: FieldMap,
): Record<string, unknown> {
  const drop = new Set(managed);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(current ?? {})) if (!drop.has(k)) out[k] = v;
  return Object.assign(out, next);
}

/** The managed keys a document holds (scalars only; FieldMap values are scalars). */
export function fieldsFromDocument(doc: Record<string, unknown>, fields: readonly string[]): FieldMap {
  const out: FieldMap = {};
  for (const f of fields) {
    const v = doc[f];
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out[f] = v;
  }
  return out;
}

/** Deep equality of two JSON documents, key order ignored: "would this PUT change anything". */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every(
    (k) =>
      Object.hasOwn(b, k) && sameJson((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]),
  );
}
