/**
 * Prelude's `user_not_found` markers (`{p}:unlinked:<target>`, field = source user id), written when a
 * target said it does not know a user, read by the scan to skip the probe until the user changes.
 *
 * Issue 11.4: `<at, ms in base36>,<fingerprint>`, the fingerprint being the first 64 bits of the
 * payload's sha256 in base64url (11 characters): ~20 bytes, one 24-byte Redis allocation, where the
 * JSON `{"at":…,"hash":"<64 hex>"}` before it took 96. A fingerprint collision only skips one probe
 * until the marker is older than `UNLINKED_RECHECK`. Values starting with `{` are the old JSON: still
 * read.
 */

/** Prelude answered `user_not_found` for this user (seed 004): not probed again until it may have changed. */
export interface UnlinkedMarker {
  /** Epoch ms when the target last said it does not know the user. */
  at: number;
  /**
   * The payload we tried to write then: its fingerprint (`fingerprintOf`), or in markers written before
   * issue 11.4 its whole sha256 hex. A different one means the source user changed.
   */
  hash: string;
}

/** The first 16 hex digits (64 bits) of a payload's sha256 hex, in base64url. */
export function fingerprintOf(sha256Hex: string): string {
  return Buffer.from(sha256Hex.slice(0, 16), 'hex').toString('base64url');
}

/** The stored value of a marker for a payload whose sha256 hex is `sha256Hex`. */
export function encodeUnlinked(at: number, sha256Hex: string): string {
  return `${Math.max(0, Math.trunc(at)).toString(36)},${fingerprintOf(sha256Hex)}`;
}

/** A stored marker, either format. */
export function parseUnlinked(raw: string | null | undefined): UnlinkedMarker | null {
  if (!raw) return null;
  if (raw.startsWith('{')) return JSON.parse(raw) as UnlinkedMarker;
  const comma = raw.indexOf(',');
  return { at: Number.parseInt(raw.slice(0, comma), 36), hash: raw.slice(comma + 1) };
}

/** Whether the marker was written for the payload whose sha256 hex is `sha256Hex` (either format). */
export function markerMatches(marker: UnlinkedMarker, sha256Hex: string): boolean {
  return marker.hash.length === sha256Hex.length
    ? marker.hash === sha256Hex
    : marker.hash === fingerprintOf(sha256Hex);
}
