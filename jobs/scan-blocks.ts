import { randomInt } from 'node:crypto';
import type { Bloom } from '../src/core/bloom.js';
import { sha256Base64url } from '../src/core/hashing.js';
import type { TargetId } from '../src/core/targets.js';
import type { SourceRecord, SourceUser } from '../src/core/types.js';
import type { JobContext } from '../src/queue/context.js';
import { fnv1a, MUTATION_BUCKETS } from '../src/store/mutations.js';
import type { RunOptions } from '../src/store/run-record.js';
import type { CounterDelta } from '../src/store/run-store.js';
import { type BlockConclusion, decodeConclusion, readBlocks, writeBlocks } from '../src/store/scan-blocks.js';
import type { ChunkRead } from '../src/store/state-store.js';
import { needsLink } from './link-steps.js';
import {
  CODE_UNCHANGED,
  CODE_UNLINKED,
  CODE_UNLINKED_STATED,
  duplicates,
  readChunkFor,
} from './scan-chunk.js';

/**
 * Issue 11 (the unchanged re-run): block conclusions, so that a scan need not read and compare every
 * user's states when nothing changed.
 *
 * The scan cuts each chunk's users, in source order, into blocks of about 64 (a block ends after a
 * user whose id hashes to 0 mod 64, or at 256 users, or at the chunk's end: cuts follow the ids, so
 * a user added or removed moves only its own block's edges). When every user of a block comes out
 * unchanged (or unlinked with a fresh marker) in every target, the scan stores that conclusion
 * (src/store/scan-blocks.ts) under a digest of the run's config and of the block's users exactly as
 * the source returned them. The next scan that computes the same digest trusts the conclusion, and
 * counts its users without reading their states, when also:
 * - the mutation counters of its users sum as they did before the concluding scan read their states
 *   (src/store/mutations.ts: every write or removal of a state, marker or link bumps its user's
 *   counter, whoever makes it: a late retry, `retry-failed`, a single-user sync, `forget`, an import);
 * - the counters' epoch is the same (a deleted counter string drops every conclusion);
 * - no unlinked marker of the block has gone stale (`UNLINKED_RECHECK`);
 * - none of its users is a duplicate in this scan.
 * Anything else: the block's users go through the full compare (scan-chunk.ts) as before, and a block
 * found unchanged is concluded again. Dry runs, `--full`, and runs limited to some users neither trust
 * nor store conclusions. A mapping, target set or linking setting changed: other digests, so the first
 * scan after it compares everyone.
 */

/** Part of every digest: bump when what a conclusion means changes. */
const BLOCK_FORMAT = 2;
/** A block ends after a user whose id's hash has these bits 0: 64 users on average. */
const CUT_MASK = 63;
const MAX_BLOCK = 256;

/** What the scan's blocks depend on besides the users: undefined when this run uses none. */
export interface BlockSetup {
  digest: string;
  recheckMs: number;
}

export function blockSetup(
  ctx: JobContext,
  opts: RunOptions,
  targets: readonly TargetId[],
  limited: boolean,
): BlockSetup | undefined {
  if (opts.dryRun || opts.full || limited || targets.length === 0 || targets.length > 3) return undefined;
  const parts = [
    `blocks ${BLOCK_FORMAT}`,
    targets.join(','),
    needsLink(ctx) ? 'linking' : 'no linking',
    ctx.links ? 'link store' : 'no link store',
    String(ctx.settings.unlinkedRecheckMs),
  ];
  for (const t of targets) {
    const digest = ctx.targets[t]?.mappingDigest;
    if (!digest) return undefined;
    parts.push(`${t} ${digest}`);
  }
  return { digest: sha256Base64url(parts.join('\n')), recheckMs: ctx.settings.unlinkedRecheckMs };
}

/**
 * A user as the digest sees it: every field the mapping may read, in order, absent, null and '' apart.
 * The fields are joined with a control character, which no source field holds (the source connector
 * refuses them, record.ts), so the text is unambiguous without length prefixes. One flat array a
 * block and one join: a string built user by user made half a kilobyte of garbage a user.
 */
const SEP = '\u0001';
const ABSENT = '\u0002';
const NULL = '\u0003';

function pushUser(parts: string[], u: SourceUser): void {
  const { firstName: f, lastName: l, email: e } = u;
  parts.push(
    u.id,
    typeof f === 'string' ? f : f === null ? NULL : ABSENT,
    typeof l === 'string' ? l : l === null ? NULL : ABSENT,
    typeof e === 'string' ? e : e === null ? NULL : ABSENT,
  );
}

/** 16 characters of sha256 (base64url) over the parts. */
const digestOf = (parts: readonly string[]) => sha256Base64url(parts.join(SEP)).slice(0, 16);

/** A block's digest: the setup's digest and its users (what `cut` computes as the users come). */
export function blockDigest(setupDigest: string, users: readonly SourceUser[]): string {
  const parts = [setupDigest];
  for (const u of users) pushUser(parts, u);
  return digestOf(parts);
}

interface Block {
  key: string;
  digest: string;
  /** Indexes into the chunk's records. */
  at: number[];
  /** The users' mutation buckets (mutations.ts). */
  buckets: number[];
}

/** The chunk's valid users cut into blocks (record indexes), each with its key and digest. */
function cut(records: readonly SourceRecord[], setup: BlockSetup, hashes: readonly number[]): Block[] {
  const blocks: Block[] = [];
  let at: number[] = [];
  let buckets: number[] = [];
  let parts = [setup.digest];
  const close = () => {
    const first = records[at[0]!] as { ok: true; user: SourceUser };
    blocks.push({ key: sha256Base64url(first.user.id).slice(0, 12), digest: digestOf(parts), at, buckets });
    at = [];
    buckets = [];
    parts = [setup.digest];
  };
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    if (!r.ok) continue;
    at.push(i);
    pushUser(parts, r.user);
    // One FNV-1a of the id: its low 16 bits are the mutation bucket (mutationBucket), bits 16 to 21
    // say whether the block ends after it.
    const h = hashes[i]!;
    buckets.push(h & (MUTATION_BUCKETS - 1));
    if (((h >>> 16) & CUT_MASK) === 0 || at.length >= MAX_BLOCK) close();
  }
  if (at.length) close();
  return blocks;
}

/** A block read whose conclusion was not trusted: concluded after the chunk's decision if it holds. */
export interface OpenBlock {
  key: string;
  digest: string;
  epoch: number;
  sum: number;
  userIds: string[];
}

/** What `readWithBlocks` answers: what `splitFresh` (scan-chunk.ts) does, and the blocks' part. */
export interface BlockedRead {
  /** Per record: a duplicate (in the seen set, in `also`, or earlier in the chunk). */
  before: boolean[];
  /** The records that are no duplicates. */
  fresh: SourceRecord[];
  /** Of `fresh`, what the full decision takes: all but the users of trusted blocks. */
  slow: SourceRecord[];
  /** The read of `slow`'s valid users, in order (processChunk's `pre`). */
  read: ChunkRead;
  /** Per target, what the trusted blocks' users count (unchanged, unlinked). */
  counters: CounterDelta[];
  /** Per target, a flag per id read ('1': a fresh valid user with a state), as `recordSeen` takes. */
  stated: Map<TargetId, string>;
  /**
   * With Prelude: a flag per id read ('1': a fresh valid user with a Prelude unlinked marker), as
   * `recordSeen` counts it for `markersAllSeen` (src/store/deletions.ts).
   */
  markers?: string;
  /** Blocks to conclude once their users are decided. */
  open: OpenBlock[];
  /** Users counted from conclusions. */
  trusted: number;
  /** The keys of every block cut from the chunk (a complete scan keeps only these, `dropBlocksExcept`). */
  keys: string[];
}

/**
 * A chunk's first read with blocks: the duplicate check and the blocks' conclusions in one call, then
 * the states, links and markers of the users no conclusion answers (a second call, skipped when none).
 * `recIds`: the records' ids; `also`: ids read but not yet in the seen set (the chunk before).
 * `eager` (the chunk before trusted few of its users: a first re-run after a backfill): the second
 * call is sent at once for every user, behind the first on the same connection (so the counters are
 * still read before the states), and the slow users' rows are picked from it: no round trip waits.
 */
export async function readWithBlocks(
  ctx: JobContext,
  opts: RunOptions,
  targets: readonly TargetId[],
  records: readonly SourceRecord[],
  recIds: readonly (string | undefined)[],
  seenKey: string,
  also: readonly string[] | undefined,
  setup: BlockSetup,
  eager = false,
  bloom?: Bloom,
): Promise<BlockedRead> {
  const { redis, layout } = ctx.runs.backing();
  const ids = recIds.filter((id): id is string => !!id);
  // One FNV-1a per id: its block cut and mutation bucket, and its place in the scan's Bloom filter.
  // `suspects` (with a filter, added in stream order: this runs before the first await): the ids it
  // may have seen, the only ones the seen set is asked about.
  const hashes = recIds.map((id) => (id ? fnv1a(id) : 0));
  let suspects: number[] | undefined;
  if (bloom) {
    suspects = [];
    let j = 0;
    for (let i = 0; i < recIds.length; i++) {
      if (!recIds[i]) continue;
      if (bloom.addHash(hashes[i]!)) suspects.push(j);
      j++;
    }
  }
  const blocks = cut(records, setup, hashes);
  const asks = blocks.map((b) => ({ key: b.key, buckets: b.buckets }));
  const checked = suspects ? suspects.map((j) => ids[j]!) : ids;
  const asked = readBlocks(redis, layout, seenKey, checked, asks, randomInt(1, 2 ** 32 - 1));
  const all = eager
    ? readChunkFor(
        ctx,
        opts,
        targets,
        records.flatMap((r) => (r.ok ? [r.user.id] : [])),
      )
    : undefined;
  all?.catch(() => undefined); // awaited below
  const got = await asked;
  const { before, idx } = suspects
    ? suspectDuplicates(recIds, ids, suspects, got.seen, also)
    : duplicates(recIds, got.seen, also);
  const now = Date.now();
  const n = targets.length;
  const flags = targets.map(() => new Uint8Array(ids.length)); // 1: fresh valid user with a state
  const pi = targets.indexOf('prelude');
  const marked = pi >= 0 ? new Uint8Array(ids.length) : undefined; // 1: fresh valid user with a marker
  const counts = targets.map(() => [0, 0]); // unchanged, unlinked
  const fast = new Uint8Array(records.length);
  const open: OpenBlock[] = [];
  let trusted = 0;
  blocks.forEach((b, bi) => {
    if (b.at.some((i) => before[i])) return; // a duplicate inside: decided user by user, not concluded
    const raw = got.values[bi];
    const c = raw ? decodeConclusion(raw) : undefined;
    const holds =
      c !== undefined &&
      c.digest === b.digest &&
      c.epoch === got.epoch &&
      c.sum === got.sums[bi] &&
      (c.validUntil === undefined || now < c.validUntil) &&
      c.codes.length === b.at.length;
    if (!holds) {
      if (got.sums[bi]! < 0) return; // counters of another epoch: neither trusted nor concluded
      open.push({
        key: b.key,
        digest: b.digest,
        epoch: got.epoch,
        sum: got.sums[bi]!,
        userIds: b.at.map((i) => recIds[i]!),
      });
      return;
    }
    b.at.forEach((i, u) => {
      let code = c.codes.charCodeAt(u) - 97;
      for (let t = 0; t < n; t++) {
        const v = code % 3;
        code = (code - v) / 3;
        if (v === CODE_UNCHANGED) counts[t]![0]!++;
        else counts[t]![1]!++;
        if (v !== CODE_UNLINKED) flags[t]![idx[i]!] = 1;
        // A conclusion's unlinked code was a fresh marker, unchanged since (the counters' sum held).
        if (t === pi && v !== CODE_UNCHANGED) marked![idx[i]!] = 1;
      }
      fast[i] = 1;
    });
    trusted += b.at.length;
  });
  const fresh = records.filter((_, i) => !before[i]);
  const slow = records.filter((_, i) => !before[i] && fast[i] === 0);
  const slowIds = slow.filter((r) => r.ok).map((r) => (r as { user: SourceUser }).user.id);
  const read = all
    ? pickRows(await all, records, before, fast)
    : await readChunkFor(ctx, opts, targets, slowIds);
  // The slow users' flags from their read states.
  let s = 0;
  records.forEach((r, i) => {
    if (!r.ok || before[i] || fast[i] === 1) return;
    targets.forEach((_, t) => {
      if (read.states[t]![s] != null) flags[t]![idx[i]!] = 1;
    });
    if (marked && read.unlinked?.[s]) marked[idx[i]!] = 1;
    s++;
  });
  const flagText = (f: Uint8Array) => {
    for (let j = 0; j < f.length; j++) f[j] = f[j] === 1 ? 49 : 48; // '1' / '0'
    return Buffer.from(f.buffer, f.byteOffset, f.length).toString('latin1');
  };
  const stated = new Map<TargetId, string>();
  targets.forEach((t, ti) => {
    stated.set(t, flagText(flags[ti]!));
  });
  const counters: CounterDelta[] = [];
  targets.forEach((t, ti) => {
    const [unchanged, unlinked] = counts[ti]!;
    if (unchanged) counters.push([t, 'unchanged', unchanged]);
    if (unlinked) counters.push([t, 'unlinked', unlinked]);
  });
  return {
    before,
    fresh,
    slow,
    read,
    counters,
    stated,
    ...(marked ? { markers: flagText(marked) } : {}),
    open,
    trusted,
    keys: blocks.map((b) => b.key),
  };
}

/**
 * `duplicates` when only `suspects` (indexes into `ids`: the scan's Bloom filter could not rule them
 * out, see readWithBlocks) can be one; `seen` answers the suspects. A suspect is a duplicate when the seen
 * set holds it, the chunk before holds it (`also`, not yet in the set) or it came earlier in the chunk:
 * each looked up in the arrays (a few per chunk), no set of the chunk's ids is built.
 */
export function suspectDuplicates(
  recIds: readonly (string | undefined)[],
  ids: readonly string[],
  suspects: readonly number[],
  seen: readonly boolean[],
  also: readonly string[] | undefined,
): { before: boolean[]; idx: number[] } {
  const before = new Array<boolean>(recIds.length).fill(false);
  const idx = new Array<number>(recIds.length).fill(-1);
  const recordOf = new Array<number>(ids.length);
  let k = 0;
  for (let i = 0; i < recIds.length; i++) {
    if (!recIds[i]) continue;
    recordOf[k] = i;
    idx[i] = k++;
  }
  suspects.forEach((j, s) => {
    const id = ids[j]!;
    before[recordOf[j]!] = seen[s] === true || also?.includes(id) === true || ids.indexOf(id) < j;
  });
  return { before, idx };
}

/** The rows of `read` (every valid user of `records`, in order) of the users that are neither duplicates nor fast. */
function pickRows(
  read: ChunkRead,
  records: readonly SourceRecord[],
  before: readonly boolean[],
  fast: Uint8Array,
): ChunkRead {
  const rows: number[] = [];
  let u = 0;
  records.forEach((r, i) => {
    if (!r.ok) return;
    if (!before[i] && fast[i] === 0) rows.push(u);
    u++;
  });
  if (rows.length === u) return read;
  return {
    states: read.states.map((col) => rows.map((j) => col[j] ?? null)),
    links: read.links,
    unlinked: read.unlinked ? rows.map((j) => read.unlinked![j] ?? null) : null,
  };
}

/**
 * Stores the conclusion of every open block whose users all came out unchanged or unlinked in every
 * target (`codes`: per user, per target, as processChunk recorded them). `read`/`slowIds`: the slow
 * users' read (their unlinked markers give the conclusion its end).
 */
export async function concludeBlocks(
  ctx: JobContext,
  open: readonly OpenBlock[],
  codes: ReadonlyMap<string, Int8Array>,
  read: ChunkRead,
  slowIds: readonly string[],
  setup: BlockSetup,
): Promise<number> {
  const markerAt = new Map<string, number>();
  if (read.unlinked)
    read.unlinked.forEach((m, i) => {
      if (m) markerAt.set(slowIds[i]!, m.at);
    });
  const entries: [string, BlockConclusion][] = [];
  for (const b of open) {
    let text = '';
    let validUntil: number | undefined;
    let whole = true;
    for (const id of b.userIds) {
      const c = codes.get(id);
      if (!c) {
        whole = false;
        break;
      }
      let code = 0;
      for (let t = c.length - 1; t >= 0; t--) {
        const v = c[t]!;
        if (v < 0) whole = false;
        code = code * 3 + v;
        if (v === CODE_UNLINKED || v === CODE_UNLINKED_STATED) {
          const at = markerAt.get(id);
          if (at === undefined) whole = false;
          else validUntil = Math.min(validUntil ?? Number.POSITIVE_INFINITY, at + setup.recheckMs);
        }
      }
      if (!whole) break;
      text += String.fromCharCode(97 + code);
    }
    if (whole)
      entries.push([b.key, { digest: b.digest, epoch: b.epoch, sum: b.sum, validUntil, codes: text }]);
  }
  const { redis, layout } = ctx.runs.backing();
  await writeBlocks(redis, layout, entries);
  return entries.length;
}
