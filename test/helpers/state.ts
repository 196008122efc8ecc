import type { TargetState } from '../../src/store/state-store.js';

/** A state's three readable properties as a plain object (states read from Redis decode lazily). */
export function plainState(
  s: TargetState | null | undefined,
): Pick<TargetState, 'hash' | 'fields' | 'writtenAt'> | null {
  return s ? { hash: s.hash, fields: s.fields, writtenAt: s.writtenAt } : null;
}
