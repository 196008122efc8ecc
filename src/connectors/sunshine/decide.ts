import { diffFields } from '../../core/diff.js';
import type { FieldMap } from '../../core/types.js';
import { fieldKind } from './payload.js';

/**
 * Which request(s) a Sunshine write needs, from what profile-sync last wrote (`previous`) and what the
 * mapping wants now (`next`). The rules come from seed 001 (PATCH merges, PUT replaces):
 *
 * | previous | what changed                                   | requests                                 |
 * |----------|------------------------------------------------|------------------------------------------|
 * | null     | (never written by us)                          | GET; 404 -> PUT create; 200 -> PUT merge  |
 * | set      | nothing                                        | none (`unchanged`)                        |
 * | set      | only `name` / `attributes.*`, nothing removed  | PATCH with just those fields (404 -> create path) |
 * | set      | an identifier, or any managed field removed    | GET, then PUT the merge                   |
 *
 * A blind PUT on the create path would wipe data other systems put in the profile, hence the GET first;
 * PUT by identifier query never creates a second profile, so a replayed job cannot duplicate (seed 001:
 * "If no match is found using an identifier query, the API creates a separate profile", otherwise it
 * replaces the found one).
 */
export type SunshineDecision =
  | { kind: 'fresh' }
  | { kind: 'unchanged' }
  | { kind: 'patch'; changed: FieldMap }
  | { kind: 'replace' };

export function decideWrite(previous: FieldMap | null, next: FieldMap): SunshineDecision {
  if (previous === null) return { kind: 'fresh' };
  const diff = diffFields(previous, next);
  const fields = Object.keys(diff);
  if (fields.length === 0) return { kind: 'unchanged' };
  const changed: FieldMap = {};
  for (const field of fields) {
    const to = diff[field]!.to;
    // PATCH cannot remove an attribute or a name (it only merges) and cannot replace an identifier
    // (it adds one instead, seed 001 "Updating identifiers"): both need the GET + PUT path.
    if (to === undefined || fieldKind(field).kind === 'identifier') return { kind: 'replace' };
    changed[field] = to;
  }
  return { kind: 'patch', changed };
}
