import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { Engine } from '../queue/engine.js';
import { CHALLENGE, tokenMatches } from './auth.js';
import { createDashboard, type NodeHandler } from './dashboard.js';
import { EventLoopMonitor } from './event-loop.js';
import { type HealthOptions, liveness, readiness } from './health.js';
import { jwksEndpoint } from './jwks.js';
import { OpsMetrics } from './metrics.js';
import type { OpsEngine } from './ops-engine.js';
import { createPages, isPagePath, type SyncNow } from './pages/index.js';
import { RedisProbe } from './redis-probe.js';
import { getRun, listRuns } from './runs-api.js';
import { requestUserSync, type UserSyncEngine } from './user-sync.js';
import { isUserSyncPath, userSyncRoute } from './user-sync-route.js';

export interface OpsServerOptions {
  engine: OpsEngine;
  /** Interface to bind (`OPS_HOST`). @defaultValue `engine.config.ops.host` */
  host?: string;
  /** Port (`OPS_PORT`); 0 here means an ephemeral port (tests): the daemon checks `opsListen` first. @defaultValue `engine.config.ops.port` */
  port?: number;
  logger: Logger;
  /** Reported by `/healthz`, `/readyz` and `profile_sync_build_info`. */
  version: string;
  /** Dashboard protection and mode. @defaultValue from `engine.config.ops` */
  dashboard?: { token?: string; readOnly?: boolean };
  /** Readiness requires this process's workers to run. @defaultValue true */
  requireWorkers?: boolean;
  /** PING timeout of `/readyz` and `/metrics`. @defaultValue 1000 */
  redisTimeoutMs?: number;
  /** `/healthz` fails when the event loop was blocked longer than this in the last 10 s. @defaultValue 5000 */
  maxEventLoopLagMs?: number;
  /** Node's `process_*` / `nodejs_*` metrics. @defaultValue true */
  defaultMetrics?: boolean;
  /**
   * The full engine, for the run pages' "confirm deletions" and "retry failed" buttons
   * (jobs/run-actions.ts). Without it (or read-only) they are not offered. The daemon passes its own.
   */
  actionEngine?: Engine;
  /**
   * The user page's "sync now" (issue 12.1); without it (or read-only) the button is not offered.
   * @defaultValue `requestUserSync(userSync, id)` when `userSync` is given (the daemon)
   */
  syncNow?: SyncNow;
  /** Issue 12.2: the engine `POST /users/{id}/sync` enqueues on (the daemon's). @defaultValue none: 503 */
  userSync?: UserSyncEngine;
  /** `OPS_API_TOKEN`. @defaultValue `engine.config.ops.apiToken` */
  apiToken?: string;
}

export interface OpsServer {
  /** `http://host:port` as bound (the real port when 0 was asked). */
  url: string;
  close(): Promise<void>;
}

/** Host and port from the config, or null when `OPS_PORT=0` disables the surface. */
export function opsListen(config: Config): { host: string; port: number } | null {
  return config.ops.port === 0 ? null : { host: config.ops.host, port: config.ops.port };
}

const JSON_TYPE = 'application/json; charset=utf-8';

/**
 * The operations HTTP surface on node:http (docs/operations.md):
 *
 * | route                       | auth  | what                                                        |
 * |-----------------------------|-------|-------------------------------------------------------------|
 * | `GET /healthz`              | none  | liveness: process up, event loop not stuck                  |
 * | `GET /readyz`               | none  | readiness: Redis PING, workers, no target stopped for auth  |
 * | `GET /metrics`              | none  | Prometheus text                                             |
 * | `GET /dashboard`            | token | bull-board over the scan and sync queues                   |
 * | `GET /api/runs[?limit=N]`   | token | newest run summaries (JSON)                                 |
 * | `GET /api/runs/<id|latest>` | token | one run summary                                             |
 * | `GET /runs`, `/runs/<id>`, `/users/<id>`, `/targets` | token | HTML pages (src/http/pages/)  |
 * | `GET /.well-known/jwks.json`| none  | Zephr's public keys (RS256/ES256; 404 for HS256), issue 12.6 |
 * | `POST /users/<id>/sync`     | api   | sync one user now (202 + run id), src/http/user-sync.ts, 12.2 |
 *
 * Probes and Prometheus stay unauthenticated (the kubelet and most scrape configs send no token) and
 * expose no user data; the dashboard and run API need `OPS_DASHBOARD_TOKEN` when it is set; the
 * user-sync route needs `OPS_API_TOKEN` (Bearer) and is refused (503) while it is not set.
 */
export async function startOpsServer(opts: OpsServerOptions): Promise<OpsServer> {
  const { engine, logger } = opts;
  const ops = engine.config.ops;
  const host = opts.host ?? ops.host;
  const port = opts.port ?? ops.port;
  const token = opts.dashboard?.token ?? ops.dashboardToken;
  const readOnly = opts.dashboard?.readOnly ?? ops.dashboardReadOnly;
  const log = logger.child({ component: 'ops-http' });

  const probe = new RedisProbe(engine.connection, opts.redisTimeoutMs ?? 1_000, log);
  const loop = new EventLoopMonitor();
  const health: HealthOptions = {
    engine,
    probe,
    loop,
    version: opts.version,
    since: Date.now(),
    requireWorkers: opts.requireWorkers ?? true,
    ...(opts.maxEventLoopLagMs !== undefined ? { maxEventLoopLagMs: opts.maxEventLoopLagMs } : {}),
  };
  const metrics = new OpsMetrics({
    engine,
    probe,
    version: opts.version,
    logger: log,
    ...(opts.defaultMetrics !== undefined ? { defaultMetrics: opts.defaultMetrics } : {}),
  });
  const dashboard: NodeHandler = createDashboard({ engine, readOnly });
  const jwks = jwksEndpoint(engine.config);
  const userSyncEngine = opts.userSync;
  const syncNow: SyncNow | undefined =
    opts.syncNow ?? (userSyncEngine ? (id) => requestUserSync(userSyncEngine, id) : undefined);
  const pages = createPages({
    engine,
    probe,
    readOnly,
    logger: log,
    ...(opts.actionEngine ? { actionEngine: opts.actionEngine } : {}),
    ...(syncNow ? { syncNow } : {}),
  });

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://ops.invalid');
    const path = url.pathname;
    const isDashboard = path === '/dashboard' || path.startsWith('/dashboard/');
    const isApi = path === '/api' || path.startsWith('/api/');
    if (isUserSyncPath(req.url)) {
      const a = await userSyncRoute(req, {
        engine: opts.userSync,
        token: opts.apiToken ?? ops.apiToken,
        probe,
        crossSite: isCrossSiteWrite(req),
      });
      res.writeHead(a.status, { 'content-type': JSON_TYPE, 'cache-control': 'no-store', ...a.headers });
      res.end(JSON.stringify(a.body));
      return;
    }
    const isPage = isPagePath(path);
    if (isDashboard || isApi || isPage) {
      if (token && !tokenMatches(req, token)) {
        res.writeHead(401, { 'content-type': JSON_TYPE, 'www-authenticate': CHALLENGE });
        res.end(
          JSON.stringify({ error: 'unauthorized: send the dashboard token (Bearer, or Basic password)' }),
        );
        return;
      }
      if ((isDashboard || isPage) && isCrossSiteWrite(req)) {
        return send(res, 403, { error: 'cross-site request refused' });
      }
      if (isDashboard) return dashboard(req, res);
      if (isPage) return pages(req, res, url);
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, { error: 'method not allowed' });
    switch (path) {
      case '/healthz': {
        const a = liveness(health);
        return send(res, a.status, a.body);
      }
      case '/readyz': {
        const a = await readiness(health);
        return send(res, a.status, a.body);
      }
      case '/metrics': {
        const m = await metrics.render();
        res.writeHead(200, { 'content-type': m.contentType });
        res.end(m.body);
        return;
      }
      case '/.well-known/jwks.json': {
        const a = await jwks();
        if (a.status !== 200) return send(res, a.status, a.body);
        res.writeHead(200, { 'content-type': JSON_TYPE, 'cache-control': 'public, max-age=300' });
        res.end(JSON.stringify(a.body));
        return;
      }
    }
    if (isApi) {
      // The run store shares the engine's connection, which queues commands while Redis is away:
      // answer 503 at once instead of hanging the script that asked.
      const ping = await probe.ping();
      if (!ping.ok) return send(res, 503, { error: `redis unavailable: ${ping.error}` });
      if (path === '/api/runs') {
        const r = await listRuns(engine.runs, url.searchParams);
        return send(res, r.status, r.body);
      }
      const m = /^\/api\/runs\/([\w.-]{1,100})$/.exec(path);
      if (m) {
        const r = await getRun(engine.runs, m[1]!);
        return send(res, r.status, r.body);
      }
    }
    send(res, 404, {
      error: 'not found',
      routes: [
        '/healthz',
        '/readyz',
        '/metrics',
        '/dashboard',
        '/api/runs',
        '/runs',
        '/targets',
        '/users',
        '/.well-known/jwks.json',
        'POST /users/{id}/sync',
      ],
    });
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      log.error({ err: (err as Error).message, path: req.url?.split('?')[0] }, 'ops request failed');
      if (!res.headersSent) send(res, 500, { error: 'internal error' });
      else res.destroy();
    });
  });
  // Probes and scrapes are short; a slow client must not hold a socket for Node's default 5 minutes.
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    probe.close();
    loop.close();
    throw err;
  }
  const addr = server.address() as AddressInfo;
  const url = `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;
  if (!token && !isLoopback(addr.address)) {
    log.warn(
      { url },
      'ops dashboard is reachable from the network without a token: set OPS_DASHBOARD_TOKEN, or OPS_HOST=127.0.0.1',
    );
  }
  log.info(
    { url, dashboard: `${url}/dashboard`, readOnly, protected: Boolean(token) },
    'ops server listening',
  );

  let closed = false;
  return {
    url,
    async close() {
      if (closed) return;
      closed = true;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        // A dashboard tab keeps polling on a kept-alive socket: give in-flight answers 2 s, then cut.
        setTimeout(() => server.closeAllConnections(), 2_000).unref();
      });
      probe.close();
      loop.close();
    },
  };
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': JSON_TYPE, 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

/**
 * A browser re-sends Basic credentials with any request to this origin, whichever page made it, and
 * bull-board's `POST .../add` accepts a body a cross-site form can send without a CORS preflight. With
 * `OPS_DASHBOARD_READ_ONLY=false` a hostile page open in the operator's browser could then add or
 * drop jobs: refuse writes whose `Sec-Fetch-Site` or `Origin` says they come from another site.
 * (curl and scripts send neither header and are not affected.)
 */
export function isCrossSiteWrite(req: IncomingMessage): boolean {
  if (req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS') return false;
  const site = req.headers['sec-fetch-site'];
  if (site === 'cross-site' || site === 'same-site') return true;
  const origin = req.headers.origin;
  if (!origin) return false;
  try {
    return new URL(origin).host !== req.headers.host;
  } catch {
    return true; // `Origin: null` (sandboxed frames, file://) and garbage
  }
}

function isLoopback(address: string): boolean {
  return address.startsWith('127.') || address === '::1' || address === '::ffff:127.0.0.1';
}
