import { randomBytes } from 'node:crypto';
import { type MaskKey, maskBody, maskDiff, maskPath } from '../core/masking.js';
import type { TargetId } from '../core/targets.js';
import { OUTCOMES, type RequestRecord } from '../core/types.js';
import type { DeletionSummary } from './deletions.js';
import type {
  JobGate,
  OutcomeCounts,
  RunItem,
  RunKind,
  RunOptions,
  RunRecord,
  RunStatus,
  ScanInfo,
  TargetRunCounts,
} from './run-record.js';
import { stopKind } from './run-record.js';

/**
 * The run hash's codec: run ids, counter field names, and the parsing of a run hash into a RunRecord
 * (with the masking of items and requests when PII is not recorded). Used by src/store/run-store.ts.
 */

/** A run id: sortable, readable, no `:` (it goes into BullMQ job ids): `20261123T182501Z-3fa2`. */
export function newRunId(now = Date.now()): string {
  const iso = new Date(now)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  return `${iso}-${randomBytes(2).toString('hex')}`;
}

export function emptyCounts(): OutcomeCounts {
  return Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as OutcomeCounts;
}

export function counterField(target: TargetId, counter: string): string {
  return `${counter}:${target}`;
}

export function emptyScan(): ScanInfo {
  return { status: 'pending', complete: false, limited: false, records: 0, pages: 0 };
}

/** Masks a run item; with the install's key, masked values carry their fingerprint (issue 12.7). */
export function maskItem(item: RunItem, maskKey?: MaskKey): RunItem {
  const out: RunItem = { ...item };
  if (item.diff) out.diff = maskDiff(item.diff, maskKey);
  if (item.drift) out.drift = maskDiff(item.drift, maskKey);
  if (item.payload) out.payload = maskBody(item.payload, '', maskKey) as RunItem['payload'];
  out.requests = item.requests.map(maskRequest);
  return out;
}

function maskRequest(r: RequestRecord): RequestRecord {
  return { ...r, path: maskPath(r.path) };
}

const COUNTERS = [
  'requests',
  'planned',
  'retries',
  'rateLimited',
  'limitCuts',
  'skipped',
  'lookups',
  'creates',
] as const;

export function parseRun(h: Record<string, string>): RunRecord {
  const options = JSON.parse(h.options ?? '{}') as RunOptions;
  const targets: Partial<Record<TargetId, TargetRunCounts>> = {};
  for (const t of options.targets ?? []) {
    const outcomes = emptyCounts();
    for (const o of OUTCOMES) outcomes[o] = Number(h[counterField(t, o)] ?? 0);
    const c: TargetRunCounts = {
      outcomes,
      requests: 0,
      planned: 0,
      retries: 0,
      rateLimited: 0,
      limitCuts: 0,
      skipped: 0,
      lookups: 0,
      creates: 0,
    };
    for (const k of COUNTERS) c[k] = Number(h[counterField(t, k)] ?? 0);
    const stopped = h[`stop:${t}`];
    if (stopped) {
      c.stopped = stopped;
      c.stoppedBy = stopKind(stopped);
    }
    if (h[`itemsKept:${t}`] !== undefined) c.itemsKept = Number(h[`itemsKept:${t}`]);
    const left: Partial<OutcomeCounts> = {};
    for (const o of OUTCOMES) {
      const n = Number(h[`itemsLeft:${o}:${t}`] ?? 0);
      if (n > 0) left[o] = n;
    }
    if (Object.keys(left).length) c.itemsLeftOut = left;
    targets[t] = c;
  }
  const run: RunRecord = {
    id: h.id!,
    kind: h.kind as RunKind,
    status: h.status as RunStatus,
    startedAt: Number(h.startedAt),
    options,
    scan: JSON.parse(h.scan ?? 'null') ?? emptyScan(),
    targets,
    enqueued: Number(h.enqueued ?? 0),
    settled: Number(h.settled ?? 0),
  };
  if (h.itemsMax !== undefined) run.itemsMax = Number(h.itemsMax);
  if (h.endedAt) run.endedAt = Number(h.endedAt);
  if (h.abortReason) run.abortReason = h.abortReason;
  if (h.error) run.error = h.error;
  if (h.deletions) run.deletions = JSON.parse(h.deletions) as DeletionSummary;
  return run;
}

/** Decodes the answer of the gate script (run-scripts.ts GATE_LUA) with `reads` extra values. */
export function parseGate(r: (string | number | null)[], reads: number): JobGate {
  const [id, abort, stopped, options] = r as (string | null | undefined)[];
  const opts = options ? (JSON.parse(options) as RunOptions) : undefined;
  return {
    exists: id != null,
    abort: abort ?? undefined,
    stopped: stopped ?? undefined,
    pii: Boolean(opts?.showPii),
    plan: Boolean(opts?.plan),
    ...(opts?.maxFailureRate !== undefined ? { maxFailureRate: opts.maxFailureRate } : {}),
    settled: r[4] === 1,
    reads: Array.from({ length: reads }, (_, i) => (r[5 + i] as string | null | undefined) ?? null),
  };
}

/** `parseGate` for each user of a `psGateMany` answer (issue 11: the run's part, its options JSON, decoded once). */
export function parseGates(r: (string | number | null)[], users: number, reads: number): JobGate[] {
  const run = parseGate(r.slice(0, 4), 0);
  const at = (i: number) => 4 + i * (1 + reads);
  return Array.from({ length: users }, (_, i) => ({
    ...run,
    settled: r[at(i)] === 1,
    reads: Array.from({ length: reads }, (_, k) => (r[at(i) + 1 + k] as string | null | undefined) ?? null),
  }));
}

/** What `RunStore.completion` answers: the few fields that decide whether a run is over. */
export interface RunCompletion {
  status: RunStatus;
  scanStatus: ScanInfo['status'];
  enqueued: number;
  settled: number;
  abortReason?: string;
  /** Issue 5: the safety brake held this run's removals; it ends `held`, not `completed`. */
  deletionsHeld?: string;
}

/** The run hash fields `parseCompletion` reads, in its order. */
export const COMPLETION_FIELDS = ['status', 'scan', 'enqueued', 'settled', 'abortReason', 'deletionsHeld'];

export function parseCompletion(values: (string | null)[]): RunCompletion | null {
  const [status, scan, enqueued, settled, abortReason, deletionsHeld] = values;
  if (!status) return null;
  return {
    status: status as RunStatus,
    scanStatus: (scan ? (JSON.parse(scan) as ScanInfo).status : 'pending') as ScanInfo['status'],
    enqueued: Number(enqueued ?? 0),
    settled: Number(settled ?? 0),
    ...(abortReason ? { abortReason } : {}),
    ...(deletionsHeld ? { deletionsHeld } : {}),
  };
}
