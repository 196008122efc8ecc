import type { TargetId } from '../../core/targets.js';
import type { FieldDiff } from '../../core/types.js';
import type { RunItem, RunRecord } from '../../store/run-record.js';
import type { HistoryEntry } from '../../store/run-store.js';
import { formatDuration, summaryData } from '../../store/run-summary.js';

export { formatDuration, itemsLeftOutNote, runWarnings } from '../../store/run-summary.js';

/**
 * Rendering of run records for the commands (`backfill`, `runs`, `report`, `history`, `sync-user`):
 * plain text tables for people, one JSON shape for scripts.
 */

/**
 * Exit code of a run: 0 when nothing failed or was rejected and the run completed, else 1 (also a run
 * `held` by the deletion safety brake).
 */
export function exitCodeFor(run: RunRecord): 0 | 1 {
  if (run.status !== 'completed') return 1;
  for (const c of Object.values(run.targets)) if (c.outcomes.failed || c.outcomes.rejected) return 1;
  return 0;
}

/** The summary JSON (`--json`): `runId` and, per target, the counts under the outcome names. */
export function runSummaryJson(run: RunRecord, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const targets: Record<string, Record<string, unknown>> = {};
  for (const [t, c] of Object.entries(run.targets)) {
    targets[t] = {
      ...c.outcomes,
      requests: c.requests,
      ...(run.options.dryRun ? { planned: c.planned } : {}),
      retries: c.retries,
      rateLimited: c.rateLimited,
      ...(c.limitCuts ? { limitCuts: c.limitCuts } : {}),
      ...(c.skipped ? { skipped: c.skipped } : {}),
      ...(c.lookups ? { lookups: c.lookups } : {}),
      ...(c.creates ? { creates: c.creates } : {}),
      ...(c.stopped ? { stopped: c.stopped, stoppedBy: c.stoppedBy ?? 'auth' } : {}),
      ...(c.itemsLeftOut ? { itemsKept: c.itemsKept ?? 0, itemsLeftOut: c.itemsLeftOut } : {}),
    };
  }
  return {
    runId: run.id,
    kind: run.kind,
    status: run.status,
    startedAt: new Date(run.startedAt).toISOString(),
    ...(run.endedAt
      ? { endedAt: new Date(run.endedAt).toISOString(), durationMs: run.endedAt - run.startedAt }
      : {}),
    options: run.options,
    scan: run.scan,
    targets,
    ...(run.abortReason ? { abortReason: run.abortReason } : {}),
    ...(run.error ? { error: run.error } : {}),
    ...(run.deletions ? { deletions: run.deletions } : {}),
    exitCode: exitCodeFor(run),
    ...extra,
  };
}

export function table(rows: string[][], rightAlignFrom = 1): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) =>
      r
        .map((cell, i) => (i >= rightAlignFrom ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** The end-of-run table: one row per target, one column per outcome, then requests and retries. */
export function summaryTable(run: RunRecord): string {
  const data = summaryData(run);
  const rows: string[][] = [['target', ...data.columns]];
  for (const r of data.rows) {
    const label = r.stoppedBy === 'rate_limited' ? `${r.target} (RATE_LIMITED)` : `${r.target} (STOPPED)`;
    rows.push([r.stopped ? label : r.target, ...r.values.map(String)]);
  }
  if (data.total) rows.push(['total', ...data.total.map(String)]);
  return table(rows);
}

export function runHeadline(run: RunRecord): string {
  const took = run.endedAt ? ` in ${formatDuration(run.endedAt - run.startedAt)}` : '';
  const flags = [run.options.dryRun ? 'dry run' : '', run.options.full ? 'full' : '']
    .filter(Boolean)
    .join(', ');
  const scan = run.scan.complete
    ? 'complete scan'
    : `scan ${run.scan.status}${run.scan.limited ? ' (limited)' : ''}`;
  // Issue 11: users counted from the scan's block conclusions, without a read of their states.
  const trusted = run.scan.trusted ? ` (${run.scan.trusted} unchanged by block conclusions)` : '';
  return `run ${run.id} (${run.kind}${flags ? `, ${flags}` : ''}): ${run.status}${took}, ${run.scan.records} source records, ${scan}${trusted}`;
}

/**
 * Dry-run plan: per target the requests a real run would send and how long they take under the
 * target's rate limit (requests / limit per minute; the limit is the only pace a real run can keep),
 * with the write mode and the requests per write (planned / (created + updated), issue 11.1).
 */
export function planTable(
  run: RunRecord,
  limits: Partial<Record<TargetId, number>>,
  modes: Partial<Record<TargetId, string>> = {},
): string {
  const rows: string[][] = [['target', 'mode', 'requests', 'per write', 'limit/min', 'time at limit']];
  for (const [t, c] of Object.entries(run.targets)) {
    const limit = limits[t as TargetId] ?? 0;
    const ms = limit ? Math.ceil((c.planned / limit) * 60_000) : 0;
    const writes = c.outcomes.created + c.outcomes.updated;
    const perWrite = writes ? (c.planned / writes).toFixed(2) : '-';
    rows.push([
      t,
      modes[t as TargetId] ?? '-',
      String(c.planned),
      perWrite,
      String(limit),
      formatDuration(ms),
    ]);
  }
  return table(rows, 2);
}

/**
 * Issue 10: what a dry run's Prelude figures mean. Its lookups were really sent (reads: the plan uses the
 * `usr_` ids they found, so `planned` holds one PATCH per linked user and one create per user to create,
 * never a lookup); its creates are an upper bound.
 */
export function preludePlanNote(run: RunRecord): string[] {
  const c = run.targets.prelude;
  if (!run.options.dryRun || !c || (c.lookups === 0 && c.creates === 0)) return [];
  const lines = [
    `prelude: ${c.lookups} batch_lookup request${c.lookups === 1 ? ' was' : 's were'} sent (reads, counted in requests above); the plan writes to the usr_ ids they found.`,
  ];
  if (c.creates)
    lines.push(
      `prelude: a real run creates at most ${c.creates} Prelude user${c.creates === 1 ? '' : 's'} (PRELUDE_CREATE_USERS=true; one POST each, profile included; a create answered 409, the address already a login, leaves the user unlinked).`,
    );
  return lines;
}

export function formatDiff(diff: FieldDiff | undefined, indent = '    '): string[] {
  if (!diff) return [];
  return Object.entries(diff).map(([field, { from, to }]) => {
    const f = from === undefined ? '(none)' : JSON.stringify(from);
    const t = to === undefined ? '(removed)' : JSON.stringify(to);
    return `${indent}${field}: ${f} -> ${t}`;
  });
}

export function formatItem(item: RunItem): string[] {
  const head = `  ${item.target} ${item.userId}: ${item.outcome}${item.dryRun ? ' (dry run)' : ''}${item.attempts > 1 ? ` after ${item.attempts} attempts` : ''}`;
  const lines = [head, ...formatDiff(item.diff)];
  if (item.drift && Object.keys(item.drift).length)
    lines.push('    drift repaired (changed outside profile-sync):', ...formatDiff(item.drift, '      '));
  if (item.reason) lines.push(`    reason: ${item.reason}`);
  if (item.payload) lines.push(`    last written: ${JSON.stringify(item.payload)}`);
  for (const r of item.requests)
    lines.push(
      `    ${r.method} ${r.path} -> ${r.status ?? r.errorCode ?? '?'} (${r.durationMs} ms, ${r.requestId})`,
    );
  for (const t of item.tries ?? [])
    lines.push(`    attempt ${t.attempt} failed: ${String(t.error.code)} ${String(t.error.message)}`);
  if (item.lastError)
    lines.push(`    error: ${String(item.lastError.code)} ${String(item.lastError.message)}`);
  return lines;
}

/**
 * A dry run's "who would be removed" (issue 5): one line per user, masked as stored, at most `max`.
 * `items` are the run's `removed` items of the dry run.
 */
export function removalList(run: RunRecord, items: RunItem[], max = 50): string[] {
  const would = items.filter((i) => i.outcome === 'removed' && i.dryRun);
  const total = Object.values(run.targets).reduce((n, c) => n + c.outcomes.removed, 0);
  if (total === 0) return [];
  const out = [
    `users who left the source and would be removed (${total}${run.options.showPii ? '' : ', PII masked'}):`,
  ];
  for (const i of would.slice(0, max))
    out.push(`  ${i.target} ${i.userId}${i.payload ? `  last written: ${JSON.stringify(i.payload)}` : ''}`);
  if (total > Math.min(max, would.length)) out.push(`  ... (profile-sync report ${run.id} lists them all)`);
  return out;
}

export function formatRunsList(runs: RunRecord[]): string {
  // Issue 5's columns only when a listed run has users who left: `removed` (also in `changed`) and
  // `orphaned` (detected, left untouched or held by the brake).
  const left = runs.some((r) =>
    Object.values(r.targets).some((c) => c.outcomes.removed > 0 || c.outcomes.orphaned > 0),
  );
  const rows: string[][] = [
    [
      'run',
      'kind',
      'status',
      'started',
      'took',
      'changed',
      'unchanged',
      'failed',
      'rejected',
      ...(left ? ['removed', 'orphaned'] : []),
    ],
  ];
  for (const r of runs) {
    let changed = 0;
    let unchanged = 0;
    let failed = 0;
    let rejected = 0;
    let removed = 0;
    let orphaned = 0;
    for (const c of Object.values(r.targets)) {
      changed += c.outcomes.created + c.outcomes.updated + c.outcomes.removed;
      unchanged += c.outcomes.unchanged;
      failed += c.outcomes.failed;
      rejected += c.outcomes.rejected;
      removed += c.outcomes.removed;
      orphaned += c.outcomes.orphaned;
    }
    rows.push([
      r.id,
      r.kind + (r.options.dryRun ? ' (dry)' : ''),
      r.status,
      new Date(r.startedAt).toISOString().replace('.000Z', 'Z'),
      r.endedAt ? formatDuration(r.endedAt - r.startedAt) : '-',
      String(changed),
      String(unchanged),
      String(failed),
      String(rejected),
      ...(left ? [String(removed), String(orphaned)] : []),
    ]);
  }
  return table(rows, 5);
}

export function formatHistory(userId: string, entries: HistoryEntry[]): string {
  if (entries.length === 0) return `no recorded change for user ${userId}`;
  const lines = [`history of user ${userId} (${entries.length} entries, oldest first):`];
  for (const e of entries) {
    lines.push(
      `${new Date(e.item.at).toISOString()}  run ${e.runId} (${e.kind})${e.item.jobId ? `  job ${e.item.jobId}` : ''}`,
    );
    lines.push(...formatItem(e.item));
  }
  return lines.join('\n');
}
