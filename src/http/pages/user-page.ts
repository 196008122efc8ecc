import { createLinkStore } from '../../store/links.js';
import { syncQueueName } from '../../store/redis-layout.js';
import type { HistoryEntry } from '../../store/run-record.js';
import { StateStore } from '../../store/state-store.js';
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
  redirect,
  runUrl,
  userUrl,
} from './layout.js';
import { RUN_ID_RE } from './run-page.js';

/** The longest source user id the pages accept (the identity service's ids are short). */
export const MAX_USER_ID = 256;

/** Why a user id from a URL is refused, or undefined when it is fine (as `history <userId>` checks). */
export function userIdProblem(id: string): string | undefined {
  if (id.trim() === '') return 'empty user id: give the source user id';
  if (id.length > MAX_USER_ID) return `user id longer than ${MAX_USER_ID} characters`;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  if (/[\u0000-\u001f\u007f]/.test(id)) return 'the user id contains a control character';
  return undefined;
}

/** `GET /users[?id=X]`: the search form, or a redirect to `/users/X`. */
export function userSearch(query: URLSearchParams): PageResult {
  const id = query.get('id');
  if (id === null || id.trim() === '')
    return page({
      title: 'Find a user',
      body: html`<h1>Find a user</h1><p>Type a source user id in the search box above: the page shows the user’s timeline across runs and targets and their Prelude link.</p>`,
    });
  const problem = userIdProblem(id);
  if (problem) return errorPage(400, 'Bad user id', problem);
  return redirect(userUrl(id));
}

export interface UserPageOptions {
  /** Show the "sync now" button (not read-only, and a `syncNow` was given to the pages). */
  syncNow: boolean;
}

/**
 * `GET /users/<id>`: a user's timeline across runs and targets, newest first (the entries `history`
 * prints: src/store/run-store.ts `history`), their Prelude link (as `links list` shows it), when
 * each target was last written, and a "sync now" button when allowed. 404 when nothing is known
 * of the user (no history, no link, no state in any target).
 */
export async function userPage(
  engine: OpsEngine,
  userId: string,
  query: URLSearchParams,
  opts: UserPageOptions,
): Promise<PageResult> {
  const problem = userIdProblem(userId);
  if (problem) return errorPage(400, 'Bad user id', problem);
  const links = createLinkStore(engine.connection, engine.config.redis.prefix);
  const state = new StateStore(engine.connection, engine.layout);
  const [entries, linked, info, written] = await Promise.all([
    engine.runs.history(userId),
    links.get(userId),
    links.info([userId]),
    Promise.all(engine.targets.map(async (t) => [t, await state.get(t, userId)] as const)),
  ]);
  const lastWritten = written.filter(([, s]) => s !== null);
  const form = opts.syncNow ? syncNowForm(userId) : '';
  if (entries.length === 0 && linked === undefined && lastWritten.length === 0)
    return page({
      status: 404,
      title: 'User not found',
      userId,
      body: html`<h1>User not found</h1>
<p class="error">Nothing is recorded for user <code>${userId}</code>: no run item, no Prelude link, no write to any target.</p>
${form}`,
    });

  const linkInfo = info.get(userId);
  const preludeEnabled = engine.targets.includes('prelude');
  const linkBy = engine.config.targets.prelude?.linkBy;
  const link =
    linked !== undefined
      ? html`linked to Prelude user <code>${linked}</code>${linkInfo ? ` (found by ${linkInfo.how}, ${iso(linkInfo.at)})` : ' (imported before links recorded how)'}`
      : preludeEnabled
        ? html`no link in the table${linkBy ? ` (PRELUDE_LINK_BY=${linkBy})` : ''}`
        : 'no link in the table (Prelude is not enabled)';

  const body = html`<h1>User <code>${userId}</code></h1>
${syncNotice(query)}
${form}
<h2>Prelude link</h2>
<p id="prelude-link">${link}</p>
<h2>Last written</h2>
${
  lastWritten.length
    ? html`<table id="user-targets"><thead><tr><th>target</th><th>last written (UTC)</th></tr></thead><tbody>${lastWritten.map(
        ([t, s]) => html`<tr data-target="${t}"><td>${t}</td><td>${iso(s?.writtenAt)}</td></tr>`,
      )}</tbody></table>`
    : html`<p class="empty">No target holds a write of this user.</p>`
}
<section id="timeline"><h2>Timeline</h2>
${entries.length ? timeline(entries, engine.runs.retention.historyPerUser) : html`<p class="empty">No recorded change, failure or removal of this user (unchanged syncs are not recorded).</p>`}
</section>`;
  return page({ title: `User ${userId}`, userId, body });
}

function timeline(entries: HistoryEntry[], kept: number): Html {
  const rows = [...entries].reverse().map((e) => {
    const i = e.item;
    const showPii = false; // a history entry does not say whether its run stored PII: mask free text
    const job = i.jobId
      ? html`<a class="bull-link" href="${bullJobUrl(syncQueueName(i.target), i.jobId)}">${i.jobId}</a>`
      : '';
    const detail = [
      i.reason ? html`<div class="reason">reason: ${maskText(i.reason, showPii)}</div>` : '',
      i.lastError ? html`<div class="error">error: ${errorText(i.lastError, showPii)}</div>` : '',
      i.held ? html`<div>removal held by the safety brake</div>` : '',
    ];
    return html`<tr class="event" data-run-id="${e.runId}" data-target="${i.target}">
<td>${iso(i.at)}</td>
<td><a href="${runUrl(e.runId)}">${e.runId}</a> (${e.kind})</td>
<td>${i.target}</td>
<td>${i.outcome}${i.dryRun ? ' (dry run)' : ''}${i.attempts > 1 ? ` after ${i.attempts} attempts` : ''}</td>
<td>${diffList(i.diff)}${i.drift && Object.keys(i.drift).length ? diffList(i.drift, 'diff drift') : ''}${detail}</td>
<td>${job}</td>
</tr>`;
  });
  return html`<table id="user-timeline"><thead><tr><th>at (UTC)</th><th>run</th><th>target</th><th>outcome</th><th>what</th><th>job (bull-board)</th></tr></thead>
<tbody>${rows}</tbody></table>
<p>${entries.length} entr${entries.length === 1 ? 'y' : 'ies'}, newest first (at most ${kept} kept per user).</p>`;
}

function syncNowForm(userId: string): Html {
  return html`<form class="action-sync-now" method="post" action="${userUrl(userId)}/sync-now"><button type="submit">Sync now</button></form>`;
}

function syncNotice(query: URLSearchParams): Html | '' {
  const status = query.get('sync');
  if (status === null || !/^\d{3}$/.test(status)) return '';
  const run = query.get('run');
  const runLink = run && RUN_ID_RE.test(run) ? html` as run <a href="${runUrl(run)}">${run}</a>` : '';
  return Number(status) < 300
    ? html`<p class="notice">Sync requested${runLink} (HTTP ${status}).</p>`
    : html`<p class="notice">The sync request was refused (HTTP ${status}).</p>`;
}
