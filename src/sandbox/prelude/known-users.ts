import { hashUnit } from '../kit/index.js';

/**
 * Whether a user id falls in the share of ids Prelude does not know (users who never used the app), by a
 * deterministic hash of (seed, id): the same ids are unknown on every run with the same seed, and users
 * added to the source later follow the same rule (src/sandbox/CONTRACT.md). The kit's hashUnit finishes
 * FNV-1a like murmur3, so sequential ids (`user-000001`, `user-000002`) still spread evenly.
 */
export function inUnknownShare(seed: number, userId: string, unknownShare: number): boolean {
  if (unknownShare <= 0) return false;
  if (unknownShare >= 1) return true;
  return hashUnit(seed, userId) < unknownShare;
}
