import { html as honoHtml, raw } from 'hono/html';
import type { HtmlEscapedString } from 'hono/utils/html';
import { maskEmail } from '../../core/masking.js';
import type { FieldDiff, RequestRecord } from '../../core/types.js';

/**
 * The shell every ops page shares (issue 12.1): `<title>`, a little inline CSS, the nav bar (Runs,
 * Targets, user search, Queues: bull-board) and `<main id="page">`, plus the small helpers the pages
 * use. Pages are `hono/html` tagged templates: every interpolated value is HTML-escaped unless it is
 * itself a template, so a hostile user id or field value prints as text.
 */

export type Html = HtmlEscapedString;

/** `hono/html` without its Promise branch: no page interpolates a promise. */
export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  return honoHtml(strings, ...values) as Html;
}

/** What a page handler answers; the server writes it. */
export interface PageResult {
  status: number;
  body: string;
  headers?: Record<string, string>;
}

/** Where bull-board is mounted (src/http/dashboard.ts). */
export const DASHBOARD_PATH = '/dashboard';

/** A constant of this file, not data: written raw (escaping would break `>` selectors). */
const CSS = `
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1c1e21;background:#f6f7f9}
nav#nav{display:flex;gap:1em;align-items:center;padding:.6em 1em;background:#24292f}
nav#nav a{color:#fff;text-decoration:none;font-weight:600}
nav#nav form{margin-left:auto}
main#page{padding:1em 1.5em;max-width:1400px}
table{border-collapse:collapse;background:#fff;margin:.5em 0}
th,td{border:1px solid #d0d7de;padding:.25em .5em;text-align:left;vertical-align:top}
td.num,th.num{text-align:right}
.status-completed{color:#1a7f37}.status-failed,.status-aborted{color:#cf222e}
.status-held{color:#9a6700;font-weight:600}.status-running{color:#0969da}.status-skipped{color:#57606a}
.warn{background:#fff8c5;border:1px solid #d4a72c;padding:.4em .6em;margin:.3em 0}
.notice{background:#ddf4ff;border:1px solid #54aeff;padding:.4em .6em;margin:.3em 0}
.change,.failure,.removal{background:#fff;border:1px solid #d0d7de;padding:.4em .6em;margin:.4em 0}
.diff,code{font-family:ui-monospace,monospace;font-size:13px}
ul{margin:.2em 0;padding-left:1.4em}
.pager a{margin-right:1em}
form.inline{display:inline}
`;

const SECURITY_HEADERS: Record<string, string> = {
  'content-type': 'text/html; charset=utf-8',
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'same-origin',
  // No script at all; forms post only to this origin; never framed (clickjacking of the buttons).
  'content-security-policy':
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
};

function nav(userId?: string): Html {
  return html`<nav id="nav">
<a href="/runs">Runs</a>
<a href="/targets">Targets</a>
<a href="${DASHBOARD_PATH}">Queues</a>
<form id="user-search" method="get" action="/users">
<input name="id" placeholder="source user id" value="${userId ?? ''}" aria-label="source user id">
<button type="submit">Find user</button>
</form>
</nav>`;
}

/** A whole page. */
export function page(opts: { title: string; body: Html; status?: number; userId?: string }): PageResult {
  const doc = html`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${opts.title} · profile-sync</title>
<style>${raw(CSS)}</style>
</head><body>
${nav(opts.userId)}
<main id="page">
${opts.body}
</main>
</body></html>`;
  return { status: opts.status ?? 200, body: String(doc), headers: SECURITY_HEADERS };
}

/** An error page: 404 for an unknown run or user, 403 read-only, 503 Redis down... */
export function errorPage(status: number, title: string, message: string, extra?: Html): PageResult {
  return page({
    status,
    title,
    body: html`<h1>${title}</h1><p class="error">${message}</p>${extra ?? ''}`,
  });
}

/** `303 See Other` back to a page after a POST (the browser then GETs it). */
export function redirect(location: string): PageResult {
  return { status: 303, body: '', headers: { location, 'cache-control': 'no-store' } };
}

/** Timestamps are ISO 8601 UTC everywhere. */
export function iso(ms: number | undefined): string {
  return ms === undefined || !Number.isFinite(ms) ? '-' : new Date(ms).toISOString();
}

/** bull-board's job view: `/dashboard/queue/<queue>/<jobId>` (its client routes `/queue/:name/:jobId`). */
export function bullJobUrl(queue: string, jobId: string): string {
  return `${DASHBOARD_PATH}/queue/${encodeURIComponent(queue)}/${encodeURIComponent(jobId)}`;
}

export function bullQueueUrl(queue: string): string {
  return `${DASHBOARD_PATH}/queue/${encodeURIComponent(queue)}`;
}

export function userUrl(userId: string): string {
  return `/users/${encodeURIComponent(userId)}`;
}

export function runUrl(runId: string): string {
  return `/runs/${encodeURIComponent(runId)}`;
}

const EMAIL_IN_TEXT = /[^\s@"'<>(),;:[\]]+@[^\s@"'<>(),;:[\]]+\.[^\s@"'<>(),;:[\]]+/g;

/**
 * Free text (a rejection reason, a vendor's error message) may quote an address: masked on the page
 * unless the run records PII. Diffs and payloads are masked when stored (src/store/run-codec.ts).
 */
export function maskText(text: string, showPii: boolean): string {
  return showPii ? text : text.replace(EMAIL_IN_TEXT, (m) => maskEmail(m));
}

/** One `.diff` line per field, as `report` prints them: `field: "from" -> "to"`. */
export function diffList(diff: FieldDiff | undefined, cls = 'diff'): Html | '' {
  if (!diff || Object.keys(diff).length === 0) return '';
  const lines = Object.entries(diff).map(([field, { from, to }]) => {
    const f = from === undefined ? '(none)' : JSON.stringify(from);
    const t = to === undefined ? '(removed)' : JSON.stringify(to);
    return html`<li class="${cls}">${field}: ${f} -&gt; ${t}</li>`;
  });
  return html`<ul class="diffs">${lines}</ul>`;
}

export function requestList(requests: RequestRecord[]): Html | '' {
  if (requests.length === 0) return '';
  const lines = requests.map(
    (r) =>
      html`<li><code>${r.method} ${r.path}</code> -&gt; ${r.status ?? r.errorCode ?? '?'} (${r.durationMs} ms, ${r.requestId})</li>`,
  );
  return html`<details><summary>${requests.length} request(s)</summary><ul>${lines}</ul></details>`;
}

/** An error as recorded (`{code, message, ...}`): code and message only, masked like free text. */
export function errorText(err: Record<string, unknown> | undefined, showPii: boolean): string {
  if (!err) return '';
  return maskText(`${String(err.code ?? 'E_UNKNOWN')} ${String(err.message ?? '')}`.trim(), showPii);
}
