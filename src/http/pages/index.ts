import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../../log.js';
import type { Engine } from '../../queue/engine.js';
import type { OpsEngine } from '../ops-engine.js';
import type { RedisProbe } from '../redis-probe.js';
import { confirmDeletesAction, retryFailedAction, type SyncNow, syncNowAction } from './actions.js';
import { errorPage, html, type PageResult, redirect, runUrl } from './layout.js';
import { runPage } from './run-page.js';
import { runsPage } from './runs-page.js';
import { targetsPage } from './targets-page.js';
import { userIdProblem, userPage, userSearch } from './user-page.js';

export type { SyncNow } from './actions.js';

export interface PagesOptions {
  engine: OpsEngine;
  /** Answers "is Redis there?" before a page reads it: Redis down is a 503 page, not a hang. */
  probe: RedisProbe;
  /** `OPS_DASHBOARD_READ_ONLY`: no button, and every POST is refused (403). */
  readOnly: boolean;
  /** The full engine, for "confirm deletions" and "retry failed"; without it neither is offered. */
  actionEngine?: Engine;
  /** "sync now" on the user page; without it the button is not offered. */
  syncNow?: SyncNow;
  logger: Logger;
}

/** Whether a path is one of the pages': `/runs`, `/users`, `/targets` and below. */
export function isPagePath(path: string): boolean {
  return /^\/(runs|users|targets)(\/|$)/.test(path);
}

/**
 * The server-rendered pages beside bull-board (issue 12.1), as one node:http handler. The server
 * (src/http/server.ts) has checked the dashboard token and refused cross-site writes before this.
 *
 * | route                              | what                                                    |
 * |------------------------------------|---------------------------------------------------------|
 * | `GET /runs[?page=N]`               | runs, newest first, 50 a page                           |
 * | `GET /runs/<id>[?changes=&failures=&removals=]` | one run: per-target table, paged items     |
 * | `GET /runs/latest`                 | redirects to the newest run                             |
 * | `POST /runs/<id>/confirm-deletes`  | `backfill --confirm-deletes <id>` (held runs)           |
 * | `POST /runs/<id>/retry-failed`     | `retry-failed --run <id>` (runs with dead letters)      |
 * | `GET /users[?id=X]`                | user search; redirects to `/users/X`                    |
 * | `GET /users/<id>`                  | a user's timeline, Prelude link, last writes            |
 * | `POST /users/<id>/sync-now`        | the `syncNow` given (issue 12.1)                        |
 * | `GET /targets`                     | limits, effective limits, 429 pauses, stops, queues     |
 */
export function createPages(
  opts: PagesOptions,
): (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<void> {
  const { engine, probe, readOnly } = opts;
  const log = opts.logger;
  const canAct = !readOnly && opts.actionEngine !== undefined;
  const canSync = !readOnly && opts.syncNow !== undefined;

  const route = async (req: IncomingMessage, url: URL): Promise<PageResult> => {
    const isGet = req.method === 'GET' || req.method === 'HEAD';
    const isPost = req.method === 'POST';
    if (!isGet && !isPost) return errorPage(405, 'Method not allowed', `${req.method} is not allowed here`);
    const parts = url.pathname.split('/').filter(Boolean);
    let decoded: string[];
    try {
      decoded = parts.map((p) => decodeURIComponent(p));
    } catch {
      return errorPage(400, 'Bad address', 'the address is not valid percent-encoding');
    }
    const [top, id, action, ...rest] = decoded;
    if (rest.length) return notFound();
    if (isPost) {
      if (readOnly)
        return errorPage(
          403,
          'Read-only',
          'The dashboard is read-only (OPS_DASHBOARD_READ_ONLY): nothing can be changed from here.',
        );
      if (top === 'runs' && id !== undefined && (action === 'confirm-deletes' || action === 'retry-failed')) {
        if (!opts.actionEngine) return errorPage(403, 'Not available', 'This process cannot act on runs.');
        const down = await redisDown();
        if (down) return down;
        return action === 'confirm-deletes'
          ? confirmDeletesAction(engine, opts.actionEngine, id, log)
          : retryFailedAction(engine, opts.actionEngine, id, log);
      }
      if (top === 'users' && id !== undefined && action === 'sync-now') {
        if (!opts.syncNow) return errorPage(403, 'Not available', 'This process cannot sync a user now.');
        const problem = userIdProblem(id);
        if (problem) return errorPage(400, 'Bad user id', problem);
        return syncNowAction(opts.syncNow, id, log);
      }
      return errorPage(405, 'Method not allowed', 'POST is not allowed here');
    }
    if (action !== undefined) return notFound();
    const down = await redisDown();
    if (down) return down;
    if (top === 'runs' && id === 'latest') {
      const latest = await engine.runs.latestId();
      return latest ? redirect(runUrl(latest)) : errorPage(404, 'Run not found', 'No runs yet.');
    }
    if (top === 'runs')
      return id === undefined
        ? runsPage(engine, url.searchParams)
        : runPage(engine, id, url.searchParams, { actions: canAct });
    if (top === 'users')
      return id === undefined
        ? userSearch(url.searchParams)
        : userPage(engine, id, url.searchParams, { syncNow: canSync });
    if (top === 'targets' && id === undefined) return targetsPage(engine);
    return notFound();
  };

  // The run store shares the engine's connection, which queues commands while Redis is away.
  const redisDown = async (): Promise<PageResult | undefined> => {
    const ping = await probe.ping();
    if (ping.ok) return undefined;
    return errorPage(
      503,
      'Redis unavailable',
      `Redis does not answer (${ping.error}): the pages need it. Try again shortly.`,
    );
  };

  return async (req, res, url) => {
    // A form's body carries nothing the pages read: drain it so the socket can be reused.
    req.resume();
    const r = await route(req, url);
    res.writeHead(r.status, r.headers ?? {});
    res.end(r.body);
  };
}

function notFound(): PageResult {
  return errorPage(
    404,
    'Not found',
    'No such page.',
    html`<p><a href="/runs">Runs</a> · <a href="/targets">Targets</a></p>`,
  );
}
