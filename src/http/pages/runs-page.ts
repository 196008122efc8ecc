import { OUTCOMES } from '../../core/types.js';
import type { RunRecord } from '../../store/run-record.js';
import { formatDuration } from '../../store/run-summary.js';
import type { OpsEngine } from '../ops-engine.js';
import { errorPage, type Html, html, iso, type PageResult, page, runUrl } from './layout.js';

/** Runs per page of `/runs` (the RunStore keeps 200 by default: four pages). */
export const RUNS_PER_PAGE = 50;

/**
 * `GET /runs[?page=N]`: the recorded runs, newest first, one page at a time: kind, start,
 * status, the non-zero counts per target and outcome, requests and 429s. Reads one page of run
 * hashes (HGETALL each), never the items.
 */
export async function runsPage(engine: OpsEngine, query: URLSearchParams): Promise<PageResult> {
  const raw = query.get('page');
  const pageNo = raw === null || raw === '' ? 1 : Number(raw);
  if (!Number.isInteger(pageNo) || pageNo < 1 || pageNo > 1_000_000)
    return errorPage(400, 'Bad page', 'page must be a whole number from 1');
  const total = await engine.runs.count();
  const offset = (pageNo - 1) * RUNS_PER_PAGE;
  const runs = total > offset ? await engine.runs.list(RUNS_PER_PAGE, offset) : [];
  const pages = Math.max(1, Math.ceil(total / RUNS_PER_PAGE));

  let body: Html;
  if (total === 0) {
    body = html`<h1>Runs</h1><p class="empty">No runs yet. Start one with <code>profile-sync backfill</code>, or wait for the daemon's schedule.</p>`;
  } else if (runs.length === 0) {
    body = html`<h1>Runs</h1><p class="empty">No runs on page ${pageNo} (${total} runs, ${pages} page(s)).</p>${pager(pageNo, pages)}`;
  } else {
    body = html`<h1>Runs</h1>
<p>${total} run(s), newest first; page ${pageNo} of ${pages}.</p>
<table id="runs">
<thead><tr><th>run</th><th>kind</th><th>started (UTC)</th><th>took</th><th>status</th><th>counts per target</th><th class="num">requests</th><th class="num">429s</th></tr></thead>
<tbody>${runs.map(runRow)}</tbody>
</table>
${pager(pageNo, pages)}`;
  }
  return page({ title: pageNo > 1 ? `Runs, page ${pageNo}` : 'Runs', body });
}

function runRow(run: RunRecord): Html {
  const counts = Object.values(run.targets);
  const requests = counts.reduce((n, c) => n + c.requests, 0);
  const limited = counts.reduce((n, c) => n + c.rateLimited, 0);
  const took = run.endedAt !== undefined ? formatDuration(run.endedAt - run.startedAt) : 'running';
  const flags = [run.options.dryRun ? 'dry run' : '', run.options.full ? 'full' : '']
    .filter(Boolean)
    .join(', ');
  return html`<tr data-run-id="${run.id}">
<td><a class="run-link" href="${runUrl(run.id)}">${run.id}</a></td>
<td>${run.kind}${flags ? ` (${flags})` : ''}</td>
<td>${iso(run.startedAt)}</td>
<td>${took}</td>
<td class="status status-${run.status}">${run.status}</td>
<td>${countsCell(run)}</td>
<td class="num">${requests}</td>
<td class="num">${limited}</td>
</tr>`;
}

/** `sunshine: created 3, updated 2` per target, non-zero outcomes only. */
function countsCell(run: RunRecord): Html | string {
  const lines = Object.entries(run.targets).map(([t, c]) => {
    const parts = OUTCOMES.filter((o) => c.outcomes[o] > 0).map((o) => `${o} ${c.outcomes[o]}`);
    if (c.skipped) parts.push(`skipped ${c.skipped}`);
    const stopped = c.stopped ? ` (${c.stoppedBy === 'rate_limited' ? 'RATE_LIMITED' : 'STOPPED'})` : '';
    return html`<li data-target="${t}">${t}${stopped}: ${parts.length ? parts.join(', ') : 'nothing yet'}</li>`;
  });
  return lines.length ? html`<ul>${lines}</ul>` : '-';
}

function pager(pageNo: number, pages: number): Html {
  const prev = pageNo > 1 ? html`<a rel="prev" href="/runs?page=${pageNo - 1}">newer runs</a>` : '';
  const next = pageNo < pages ? html`<a rel="next" href="/runs?page=${pageNo + 1}">older runs</a>` : '';
  return html`<p class="pager">${prev}${next}</p>`;
}
