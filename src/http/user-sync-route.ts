import type { IncomingMessage } from 'node:http';
import { bearerMatches } from './auth.js';
import type { RedisProbe } from './redis-probe.js';
import { requestUserSync, type UserSyncAnswer, type UserSyncEngine } from './user-sync.js';

/** `/users/<id>/sync` on the raw request path: the id's segment as sent (percent-encoded). */
const ROUTE = /^\/users\/([^/?#]*)\/sync\/?(?:\?.*)?$/;

/** Whether the request is for `POST /users/{id}/sync`, judged on the raw path (`/users/../sync` included). */
export function isUserSyncPath(rawUrl: string | undefined): boolean {
  // Only `/users/{id}/sync`: the other paths under /users/ are the dashboard's user pages.
  return rawUrl !== undefined && ROUTE.test(rawUrl);
}

export interface UserSyncRouteOptions {
  /** The engine to enqueue on; absent: this server does not serve the route. */
  engine: UserSyncEngine | undefined;
  /** `OPS_API_TOKEN`; absent: the route is refused (503). */
  token: string | undefined;
  probe: RedisProbe;
  /** `isCrossSiteWrite(req)` (src/http/server.ts). */
  crossSite: boolean;
}

/**
 * `POST /users/{id}/sync` (issue 12.2). In order: 405 for another method;
 * 503 when `OPS_API_TOKEN` is not set (the route is never open: it starts runs); 401 without the
 * Bearer token; 403 for a cross-site browser write; 400 for an invalid id; 503 when Redis is away;
 * then `requestUserSync`: 202 (started or collapsed), 404 (unknown to the source), 502 (source down).
 * No body is read.
 */
export async function userSyncRoute(
  req: IncomingMessage,
  opts: UserSyncRouteOptions,
): Promise<UserSyncAnswer & { headers?: Record<string, string> }> {
  const m = ROUTE.exec(req.url ?? '');
  if (!m) return { status: 404, body: { error: 'not found: the route is POST /users/{id}/sync' } };
  if (req.method !== 'POST')
    return { status: 405, headers: { allow: 'POST' }, body: { error: 'method not allowed: use POST' } };
  if (!opts.token || !opts.engine)
    return {
      status: 503,
      body: {
        error: opts.token
          ? 'POST /users/{id}/sync is not served by this process (no engine)'
          : 'POST /users/{id}/sync is disabled: OPS_API_TOKEN is not set',
      },
    };
  if (!bearerMatches(req, opts.token))
    return {
      status: 401,
      headers: { 'www-authenticate': 'Bearer realm="profile-sync ops api"' },
      body: { error: 'unauthorized: send Authorization: Bearer <OPS_API_TOKEN>' },
    };
  if (opts.crossSite) return { status: 403, body: { error: 'cross-site request refused' } };
  let userId: string;
  try {
    userId = decodeURIComponent(m[1]!);
  } catch {
    return { status: 400, body: { error: 'invalid user id: malformed percent-encoding' } };
  }
  const ping = await opts.probe.ping();
  if (!ping.ok) return { status: 503, body: { error: `redis unavailable: ${ping.error}` } };
  return requestUserSync(opts.engine, userId);
}
