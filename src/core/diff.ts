import type { FieldDiff, FieldMap } from './types.js';

/**
 * Field-level difference between two flat payloads: `{field: {from, to}}`, fields in sorted order.
 * `previous` null means the target held nothing (every field is added).
 */
export function diffFields(
  previous: FieldMap | null | undefined,
  next: FieldMap | null | undefined,
): FieldDiff {
  const prev = previous ?? {};
  const nxt = next ?? {};
  const diff: FieldDiff = {};
  const keys = [...new Set([...Object.keys(prev), ...Object.keys(nxt)])].sort();
  for (const k of keys) {
    const from = prev[k];
    const to = nxt[k];
    if (from === to) continue;
    const entry: { from?: FieldMap[string]; to?: FieldMap[string] } = {};
    if (from !== undefined) entry.from = from;
    if (to !== undefined) entry.to = to;
    diff[k] = entry;
  }
  return diff;
}

export function isEmptyDiff(diff: FieldDiff): boolean {
  return Object.keys(diff).length === 0;
}
