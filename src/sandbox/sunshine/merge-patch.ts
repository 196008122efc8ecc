/**
 * RFC 7396 JSON merge patch of a profile's `attributes`. 003 calls PATCH by id "a JSON merge patch" and
 * 001 spells out its effect on attributes: keys in the request are added or updated, the others are
 * unaffected. Per RFC 7396 a `null` removes a key and nested objects merge recursively. Never mutates its
 * inputs (stored profiles are copy-on-write).
 */
export function mergePatch(
  target: Record<string, unknown>,
  patch: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...target };
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) {
      delete out[key];
    } else if (isObject(value)) {
      const current = out[key];
      out[key] = mergePatch(isObject(current) ? current : {}, value);
    } else {
      out[key] = value;
    }
  }
  return out;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
