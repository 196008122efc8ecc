import type { TargetId } from '../core/targets.js';
import { OUTCOMES, type Outcome } from '../core/types.js';
import type { RunRecord } from './run-record.js';

/**
 * What a run record says, as data: the per-target count table and the notes an operator must not
 * miss. The terminal (`report`, `backfill`: src/commands/print/run-report.ts) and the ops pages
 * (src/http/pages/) both render these; neither decides what goes into them.
 */

/** Outcomes shown in tables: issue 4's six, plus issue 5's two once a run has any. */
export function shownOutcomes(run: RunRecord): Outcome[] {
  const used = new Set<Outcome>();
  for (const c of Object.values(run.targets)) for (const o of OUTCOMES) if (c.outcomes[o]) used.add(o);
  return OUTCOMES.filter((o) => !['removed', 'orphaned'].includes(o) || used.has(o));
}

export interface SummaryRow {
  target: TargetId;
  /** Why the target was stopped in this run, if it was. */
  stopped?: string;
  stoppedBy?: 'auth' | 'rate_limited';
  /** One value per column, in `columns` order. */
  values: number[];
}

export interface SummaryTableData {
  /** The outcome columns, then `planned`/`requests` (dry run) or `requests`/`retries`/`429s`, then `skipped` and `lookups` when any. */
  columns: string[];
  rows: SummaryRow[];
  /** Column totals, when the run has more than one target. */
  total?: number[];
}

/** The end-of-run table: one row per target, one column per outcome, then requests and retries. */
export function summaryData(run: RunRecord): SummaryTableData {
  const outcomes = shownOutcomes(run);
  const counts = Object.values(run.targets);
  const skipped = counts.some((c) => c.skipped > 0);
  const lookups = counts.some((c) => c.lookups > 0);
  const extra = [
    ...(run.options.dryRun ? ['planned', 'requests'] : ['requests', 'retries', '429s']),
    ...(skipped ? ['skipped'] : []),
    ...(lookups ? ['lookups'] : []),
  ];
  const rows: SummaryRow[] = [];
  const total = new Array<number>(outcomes.length + extra.length).fill(0);
  for (const [t, c] of Object.entries(run.targets) as [TargetId, NonNullable<(typeof counts)[0]>][]) {
    const values = [
      ...outcomes.map((o) => c.outcomes[o]),
      ...(run.options.dryRun ? [c.planned, c.requests] : [c.requests, c.retries, c.rateLimited]),
      ...(skipped ? [c.skipped] : []),
      ...(lookups ? [c.lookups] : []),
    ];
    values.forEach((v, i) => {
      total[i]! += v;
    });
    rows.push({
      target: t,
      values,
      ...(c.stopped ? { stopped: c.stopped, stoppedBy: c.stoppedBy ?? 'auth' } : {}),
    });
  }
  return { columns: [...outcomes, ...extra], rows, ...(rows.length > 1 ? { total } : {}) };
}

/** Notes an operator must not miss: a stopped target, an abort, a failed scan. */
export function runWarnings(run: RunRecord): string[] {
  const out: string[] = [];
  for (const [t, c] of Object.entries(run.targets)) {
    if (c.stopped && c.stoppedBy === 'rate_limited')
      out.push(
        `!! ${t} was RATE_LIMITED in this run: ${c.stopped}. Its remaining jobs are in the dead letters; once the vendor takes requests again, run: profile-sync retry-failed --run ${run.id} --target ${t}`,
      );
    else if (c.stopped)
      out.push(
        `!! ${t} was STOPPED in this run: ${c.stopped}. Fix ${/app_not_found|session_disabled/.test(c.stopped) ? 'what the message says' : 'its credentials'}, then run: profile-sync retry-failed --run ${run.id} --target ${t}`,
      );
  }
  for (const [t, c] of Object.entries(run.targets)) {
    if (c.limitCuts)
      out.push(
        `${t}: 429s lowered its rate limit ${c.limitCuts} time(s) in this run (adaptive limit): ${t.toUpperCase()}_RATE_LIMIT is above what the vendor allows; set it to the vendor's figure`,
      );
  }
  const left = itemsLeftOutNote(run);
  if (left) out.push(left);
  if (run.abortReason) out.push(`!! run aborted: ${run.abortReason}`);
  const d = run.deletions;
  if (d?.held && run.options.dryRun)
    out.push(`!! a real run would be HELD by the safety brake and remove nobody: ${d.held}`);
  else if (d?.held && !d.confirmed)
    out.push(
      `!! DELETIONS HELD by the safety brake: ${d.held}. Nobody was removed. Check the source, then confirm with: profile-sync backfill --confirm-deletes ${run.id} (or raise MAX_DELETE_RATE / MAX_DELETES)`,
    );
  else if (d?.confirmed)
    out.push(
      `held deletions confirmed ${new Date(d.confirmed.at).toISOString()}: ${d.confirmed.removals} removals re-driven, ${d.confirmed.returned} users back in the source (kept)`,
    );
  if (run.scan.status === 'failed')
    out.push(`!! source scan failed: ${run.scan.error ?? 'unknown error'} (the run is incomplete)`);
  return out;
}

/** Issue 11.3: the items the run record left out (`RUN_ITEMS_MAX` reached), per target and outcome. */
export function itemsLeftOutNote(run: RunRecord): string | undefined {
  const parts: string[] = [];
  for (const [t, c] of Object.entries(run.targets)) {
    if (!c.itemsLeftOut) continue;
    const by = Object.entries(c.itemsLeftOut).map(([o, n]) => `${o} ${n}`);
    const total = Object.values(c.itemsLeftOut).reduce((a, n) => a + (n ?? 0), 0);
    parts.push(`${t} ${total} (${by.join(', ')}; ${c.itemsKept ?? 0} kept)`);
  }
  if (!parts.length) return undefined;
  return `items left out of the run record (RUN_ITEMS_MAX=${run.itemsMax ?? '?'} per target, failures and rejections kept first; the counts above are exact): ${parts.join('; ')}. Every item: backfill --items-file FILE`;
}

/** A run's duration for people (`report`, the ops pages): ms, s, min, h, d. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 120) return `${m} min ${s % 60} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}
