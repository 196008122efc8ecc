import * as scanJob from '../../../jobs/scan.js';
import type { TargetId } from '../../core/targets.js';
import { SCAN_QUEUE, syncQueueName } from '../../store/redis-layout.js';
import type { RunItem, RunRecord } from '../../store/run-record.js';
import { formatDuration, runWarnings, summaryData } from '../../store/run-summary.js';
import type { OpsEngine } from '../ops-engine.js';
import {
  bullJobUrl,
  diffList,
  errorPage,
  errorText,
  type Html,
  html,
  iso,
  maskText,
  type PageResult,
  page,
  requestList,
  runUrl,
  userUrl,
} from './layout.js';
import { cursorsFrom, readSections, type SectionName, type SectionPage } from './run-items.js';

/** A run id as `newRunId` makes them (`20261123T182501Z-3fa2`), or any id a test or an old version made. */
export const RUN_ID_RE = /^[\w.-]{1,100}$/;

export interface RunPageOptions {
  /** The buttons may be shown: not read-only, and this process has the engine to act. */
  actions: boolean;
}

/**
 * `GET /runs/<id>`: one run as `profile-sync report` prints it (headline, the per-target table, the
 * notes an operator must not miss), then its changes with their field diffs, its failures and
 * rejections with errors and attempts, and its removals, each section paged (src/http/pages/run-items.ts).
 * Held runs say why. With actions allowed: "confirm deletions" (held runs) and "retry failed" (runs
 * with dead letters), posting to `/runs/<id>/confirm-deletes` and `/runs/<id>/retry-failed`.
 */
export async function runPage(
  engine: OpsEngine,
  runId: string,
  query: URLSearchParams,
  opts: RunPageOptions,
): Promise<PageResult> {
  const run = RUN_ID_RE.test(runId) ? await engine.runs.get(runId) : null;
  if (!run)
    return errorPage(
      404,
      'Run not found',
      `No run ${runId} is recorded (runs are kept ${engine.runs.retention.keep} at most).`,
      html`<p><a href="/runs">All runs</a></p>`,
    );
  const showPii = run.options.showPii;
  const { total, sections } = await readSections(engine.runs, run, cursorsFrom(query));
  const retryable = opts.actions && (await hasDeadLetters(engine, run));
  const confirmable =
    opts.actions && run.status === 'held' && !run.options.dryRun && Boolean(run.deletions?.held);

  const body = html`<h1>Run ${run.id}</h1>
${notice(query)}
${headline(run)}
${heldReason(run)}
${runWarnings(run)
  // #held-reason above says it (with the confirmation state): the CLI's held line would repeat it.
  .filter((w) => !/^!! DELETIONS HELD|^held deletions confirmed/.test(w))
  .map((w) => html`<p class="warn">${maskText(w, showPii)}</p>`)}
${confirmable ? actionForm(run.id, 'confirm-deletes', 'Confirm deletions', 'Re-check the held users against the source, then remove those still gone') : ''}
${retryable ? actionForm(run.id, 'retry-failed', 'Retry failed', 'Re-drive this run’s dead letters as a new retry run') : ''}
<h2>Per target</h2>
${targetsTable(run)}
<p>${total} item(s) recorded${showPii ? '' : ', PII masked'}.</p>
${section(run, 'changes', 'Changes', sections.changes)}
${section(run, 'failures', 'Failures and rejections', sections.failures)}
${section(run, 'removals', 'Removals', sections.removals)}`;
  return page({ title: `Run ${run.id}`, body });
}

function headline(run: RunRecord): Html {
  const flags = [run.options.dryRun ? 'dry run' : '', run.options.full ? 'full' : '']
    .filter(Boolean)
    .join(', ');
  const took = run.endedAt !== undefined ? formatDuration(run.endedAt - run.startedAt) : 'still running';
  const scan = run.scan.complete
    ? 'complete scan'
    : `scan ${run.scan.status}${run.scan.limited ? ' (limited)' : ''}`;
  return html`<table class="headline">
<tr><th>kind</th><td>${run.kind}${flags ? ` (${flags})` : ''}</td></tr>
<tr><th>status</th><td class="status status-${run.status}">${run.status}</td></tr>
<tr><th>started (UTC)</th><td>${iso(run.startedAt)}</td></tr>
<tr><th>ended (UTC)</th><td>${iso(run.endedAt)}</td></tr>
<tr><th>took</th><td>${took}</td></tr>
<tr><th>source</th><td>${run.scan.records} records, ${scan}</td></tr>
<tr><th>jobs</th><td>${run.settled} of ${run.enqueued} settled</td></tr>
${run.options.retryOf ? html`<tr><th>retry of</th><td><a href="${runUrl(run.options.retryOf)}">${run.options.retryOf}</a></td></tr>` : ''}
<tr><th>scan job</th><td><a class="bull-link" href="${bullJobUrl(SCAN_QUEUE, scanJob.jobId(run.id))}">${scanJob.jobId(run.id)}</a> (bull-board)</td></tr>
</table>`;
}

function heldReason(run: RunRecord): Html | '' {
  const d = run.deletions;
  if (run.status !== 'held' && !d?.held) return '';
  if (!d?.held) return html`<p id="held-reason" class="warn">This run is held.</p>`;
  const state = d.confirmed
    ? `confirmed ${iso(d.confirmed.at)}: ${d.confirmed.removals} removals re-driven, ${d.confirmed.returned} users back in the source`
    : `nobody was removed; check the source, then confirm (the button below when the pages are not read-only, or profile-sync backfill --confirm-deletes ${run.id}), or raise MAX_DELETE_RATE / MAX_DELETES`;
  return html`<p id="held-reason" class="warn">Deletions held by the safety brake: ${d.held} (${state}).</p>`;
}

function notice(query: URLSearchParams): Html | '' {
  const done = query.get('done');
  const retry = query.get('retry');
  switch (done) {
    case 'confirmed':
      return html`<p class="notice">Held deletions confirmed: the removal jobs are enqueued; the run ends once they settled.</p>`;
    case 'confirm-refused':
      return html`<p class="notice">Nothing to confirm: the run has no held deletions (already confirmed, or not held).</p>`;
    case 'retried':
      return retry && RUN_ID_RE.test(retry)
        ? html`<p class="notice">Dead letters re-driven as run <a href="${runUrl(retry)}">${retry}</a>.</p>`
        : '';
    case 'nothing-to-retry':
      return html`<p class="notice">No dead letters of this run are left to retry.</p>`;
    default:
      return '';
  }
}

function actionForm(runId: string, action: string, label: string, title: string): Html {
  return html`<form class="action-${action} inline" method="post" action="${runUrl(runId)}/${action}"><button type="submit" title="${title}">${label}</button></form> `;
}

/** The `report` table: one row per target, one column per outcome, requests, retries, 429s. */
function targetsTable(run: RunRecord): Html {
  const data = summaryData(run);
  if (data.rows.length === 0) return html`<p class="empty">No target in this run.</p>`;
  const row = (label: Html | string, values: number[], target?: TargetId) =>
    html`<tr${target ? html` data-target="${target}"` : ''}><th>${label}</th>${values.map((v) => html`<td class="num">${v}</td>`)}</tr>`;
  return html`<table id="run-targets">
<thead><tr><th>target</th>${data.columns.map((c) => html`<th class="num">${c}</th>`)}</tr></thead>
<tbody>
${data.rows.map((r) => {
  const label = r.stopped
    ? html`${r.target} <span class="status-failed" title="${r.stopped}">(${r.stoppedBy === 'rate_limited' ? 'RATE_LIMITED' : 'STOPPED'})</span>`
    : r.target;
  return row(label, r.values, r.target);
})}
${data.total ? row('total', data.total) : ''}
</tbody></table>`;
}

function section(run: RunRecord, name: SectionName, title: string, p: SectionPage): Html {
  const render = name === 'changes' ? changeItem : name === 'failures' ? failureItem : removalItem;
  const showPii = run.options.showPii;
  const base = runUrl(run.id);
  const first = p.from > 0 ? html`<a rel="first" href="${base}#${name}">first page</a>` : '';
  const next =
    p.next !== undefined ? html`<a rel="next" href="${base}?${name}=${p.next}#${name}">next page</a>` : '';
  const what = title.toLowerCase();
  const empty =
    p.items.length > 0
      ? ''
      : p.next !== undefined
        ? html`<p class="empty">No ${what} in items ${p.from + 1} to ${p.next}; the next page reads on.</p>`
        : html`<p class="empty">${p.from > 0 ? `No more ${what}.` : `No ${what} in this run.`}</p>`;
  return html`<section id="${name}"><h2>${title}</h2>
${empty}${p.items.map(({ index, item }) => render(item, index, showPii))}
<p class="pager">${first}${next}</p>
</section>`;
}

function itemHead(item: RunItem, index: number): Html {
  const job = item.jobId
    ? html` · job <a class="bull-link" href="${bullJobUrl(syncQueueName(item.target), item.jobId)}">${item.jobId}</a>`
    : '';
  return html`<div class="head">#${index + 1} <a href="${userUrl(item.userId)}">${item.userId}</a> · ${item.target} · <b>${item.outcome}</b>${item.dryRun ? ' (dry run)' : ''}${item.attempts > 1 ? ` after ${item.attempts} attempts` : ''} · ${iso(item.at)}${job}</div>`;
}

function changeItem(item: RunItem, index: number): Html {
  const drift =
    item.drift && Object.keys(item.drift).length
      ? html`<div>drift repaired (changed outside profile-sync):</div>${diffList(item.drift, 'diff drift')}`
      : '';
  return html`<div class="change" data-user="${item.userId}" data-target="${item.target}">
${itemHead(item, index)}${diffList(item.diff)}${drift}${requestList(item.requests)}
</div>`;
}

function failureItem(item: RunItem, index: number, showPii: boolean): Html {
  const tries = (item.tries ?? []).map(
    (t) =>
      html`<li>attempt ${t.attempt} at ${iso(t.at)} failed: ${errorText(t.error, showPii)} (${t.requestsSent} request(s))</li>`,
  );
  return html`<div class="failure" data-user="${item.userId}" data-target="${item.target}">
${itemHead(item, index)}
${item.reason ? html`<div class="reason">reason: ${maskText(item.reason, showPii)}</div>` : ''}
${item.lastError ? html`<div class="error">error: ${errorText(item.lastError, showPii)}</div>` : ''}
${tries.length ? html`<ul class="tries">${tries}</ul>` : ''}
${requestList(item.requests)}
</div>`;
}

function removalItem(item: RunItem, index: number): Html {
  return html`<div class="removal" data-user="${item.userId}" data-target="${item.target}">
${itemHead(item, index)}
${item.held ? html`<div>removal held by the safety brake</div>` : ''}
${item.payload ? html`<div>last written: <code>${JSON.stringify(item.payload)}</code></div>` : ''}
${requestList(item.requests)}
</div>`;
}

/**
 * "retry failed" is offered when the run's counters show failures and a target of the run has jobs
 * in its failed set (BullMQ's count: cheap; which run they belong to is settled by `retryFailed`).
 */
async function hasDeadLetters(engine: OpsEngine, run: RunRecord): Promise<boolean> {
  for (const [t, c] of Object.entries(run.targets) as [TargetId, { outcomes: { failed: number } }][]) {
    if (!c.outcomes.failed) continue;
    const q = engine.syncQueues[t];
    if (q && (await q.getFailedCount()) > 0) return true;
  }
  return false;
}
