import type { HttpConfig, ZephrConfig } from '../../config/schema.js';
import { ConfigError } from '../../core/config-error.js';
import { diffFields } from '../../core/diff.js';
import { SyncError } from '../../core/errors.js';
import type {
  Change,
  FieldMap,
  ItemResult,
  PlannedRequest,
  RemoveResult,
  RequestScope,
  SourceUser,
} from '../../core/types.js';
import { createHttpClient } from '../http.js';
import {
  type ConnectorMapping,
  isObject,
  managedFields,
  RequestLog,
  unreadableRead,
  unsafePathSegment,
} from '../target-common.js';
import type { ConnectorDeps, TargetConnector } from '../types.js';
import { createJwtMinter } from './jwt.js';
import { fieldsFromDocument, mergeDocument, sameJson } from './payload.js';

export interface ZephrConnectorOptions {
  config: ZephrConfig;
  http: HttpConfig;
  /** The compiled Zephr mapping (plain keys: `first_name`, `last_name`, `email`). */
  mapping: ConnectorMapping;
  /** Requests per minute (`targetRateLimit(config, 'zephr')`). */
  rateLimit: number;
}

/** The subject `check()` mints a token for: a 404 for its profile proves URL and signing key. */
export const CHECK_SUBJECT = 'profile-sync-connection-check';

/**
 * Zephr extended profiles (seed 000). The document is per (user, appId) and a PUT overwrites it whole.
 * Two write modes (`ZEPHR_WRITE_MODE`, issue 11.1, docs/targets.md "Write modes"):
 * - `owned` (default): the app id is profile-sync's own context, the document is ours; a write is one
 *   PUT of the managed fields, nothing is read. A key another system put there is lost on the next write.
 * - `merge`: GET + PUT of the merge (mergeDocument): keys profile-sync does not own survive.
 * The user is whoever the JWT names, so every request carries a token minted for that user (jwt.ts).
 */
export function createZephrConnector(options: ZephrConnectorOptions, deps: ConnectorDeps): TargetConnector {
  const { config, mapping } = options;
  const owned = config.writeMode === 'owned';
  const minter = createJwtMinter(config.jwt);
  const headerName = config.jwt.header;
  const unsafeApp = unsafePathSegment(config.appId);
  if (unsafeApp !== undefined) {
    throw new ConfigError(`ZEPHR_APP_ID ${unsafeApp}: it is one path segment of /blaize/profile/{appId}`);
  }
  const path = `/blaize/profile/${encodeURIComponent(config.appId)}`;
  const client = createHttpClient({
    target: 'zephr',
    baseUrl: config.url,
    http: options.http,
    dispatcher: deps.dispatcher,
    logger: deps.logger,
    throttle: deps.throttle,
    // Minted per try, so a retry never sends an expired token. userId is always set by this connector.
    headers: async ({ userId }): Promise<Record<string, string>> => {
      const token = await minter.mint(userId ?? CHECK_SUBJECT);
      return headerName === 'authorization' ? { authorization: `Bearer ${token}` } : { 'x-zephr-jwt': token };
    },
  });

  /** GET the user's document: the object, or null on 404 (no extended profile yet). */
  async function getDocument(log: RequestLog, userId: string): Promise<Record<string, unknown> | null> {
    const res = log.add(await client.request({ method: 'GET', path, userId, scope: log.scope }));
    if (res.status === 404) return null;
    if (res.status !== 200) throw client.fail({ method: 'GET', userId }, res);
    // An empty or non-JSON 200 is not "no profile" (that is 404): it is an answer we cannot read, and a
    // PUT built on it would erase every key other systems keep there (issue 8.2).
    if (res.body === undefined) throw unreadableRead('zephr', res, userId, 'the extended profile as JSON');
    if (!isObject(res.body)) {
      // Seed 000 allows arrays too; merging into one is impossible and overwriting would destroy
      // someone else's data, so this user is left alone and reported.
      throw new SyncError(
        'permanent',
        `zephr: GET ${res.path} (user ${userId}): the extended profile is not a JSON object; refusing to overwrite it`,
        { target: 'zephr', userId, status: 200, requestId: res.requestId },
      );
    }
    return res.body;
  }

  async function putDocument(log: RequestLog, userId: string, body: Record<string, unknown>): Promise<void> {
    const res = log.add(await client.request({ method: 'PUT', path, body, userId, scope: log.scope }));
    // Seed 000 documents 200 only; any 2xx is success.
    if (res.status < 200 || res.status >= 300) throw client.fail({ method: 'PUT', userId }, res);
  }

  async function write(change: Change): Promise<ItemResult> {
    const diff = diffFields(change.previous, change.next);
    const log = new RequestLog(change.scope);
    if (change.previous !== null && Object.keys(diff).length === 0) {
      return { outcome: 'unchanged', diff: {}, requests: [] };
    }
    if (owned) {
      // The whole document is profile-sync's: one PUT of what the mapping wants, no read. A replay sends
      // the same document again (PUT is idempotent). With no state (never written, or the state store was
      // emptied) this is a create from profile-sync's point of view, whatever Zephr held.
      await putDocument(log, change.userId, { ...change.next });
      return { outcome: change.previous === null ? 'created' : 'updated', diff, requests: log.records };
    }
    const current = await getDocument(log, change.userId);
    const body = mergeDocument(
      current,
      managedFields(mapping.fields, change.previous, change.next),
      change.next,
    );
    if (current !== null && sameJson(current, body)) {
      return { outcome: 'unchanged', diff: {}, requests: log.records };
    }
    await putDocument(log, change.userId, body);
    return { outcome: current === null ? 'created' : 'updated', diff, requests: log.records };
  }

  function plan(change: Change): PlannedRequest[] {
    if (change.previous !== null && Object.keys(diffFields(change.previous, change.next)).length === 0)
      return [];
    const managed = managedFields(mapping.fields, change.previous, change.next);
    const as = `JWT ${config.jwt.subjectClaim}=${change.userId}`;
    if (owned) {
      const what = change.previous === null ? 'create' : 'replace';
      return [
        {
          method: 'PUT',
          path,
          body: { ...change.next },
          note: `${what}: the whole document (ZEPHR_WRITE_MODE=owned, nothing read), ${as}`,
        },
      ];
    }
    return [
      { method: 'GET', path, note: `read current extended profile, ${as} (404 = none)` },
      {
        method: 'PUT',
        path,
        body: mergeDocument(change.previous, managed, change.next),
        note: `${change.previous === null ? 'create (GET answered 404)' : 'replace: current document, managed keys updated'}, ${as}`,
      },
    ];
  }

  async function read(user: SourceUser, _linkedId?: string, scope?: RequestScope): Promise<FieldMap | null> {
    const doc = await getDocument(new RequestLog(scope), user.id);
    return doc === null ? null : fieldsFromDocument(doc, mapping.fields);
  }

  async function remove(
    user: SourceUser,
    previous: FieldMap | null,
    _linkedId?: string,
    scope?: RequestScope,
  ): Promise<RemoveResult> {
    const log = new RequestLog(scope);
    if (owned && previous !== null) {
      // Owned: the document is ours and we know we wrote it; clearing it is one PUT of `{}` (seed 000 has
      // no DELETE). Without a previous write (state lost) the GET below says whether there is anything.
      await putDocument(log, user.id, {});
      return { outcome: 'removed', action: 'cleared', requests: log.records };
    }
    const current = await getDocument(log, user.id);
    if (current === null) return { outcome: 'unchanged', action: 'absent', requests: log.records };
    // PUT of the document without our keys: `{}` when only our keys were there; keys of others survive
    // (the same rule as write: never touch what profile-sync does not own). Owned: every key is ours.
    const managed = owned ? Object.keys(current) : managedFields(mapping.fields, previous, null);
    const stripped = mergeDocument(current, managed, {});
    if (sameJson(current, stripped)) return { outcome: 'unchanged', action: 'absent', requests: log.records };
    await putDocument(log, user.id, stripped);
    return { outcome: 'removed', action: 'cleared', requests: log.records };
  }

  async function check(): Promise<void> {
    const res = await client.request({ method: 'GET', path, userId: CHECK_SUBJECT });
    if (res.status !== 200 && res.status !== 404) throw client.fail({ method: 'GET' }, res);
  }

  return {
    id: 'zephr',
    limits: { requestsPerMinute: options.rateLimit },
    check,
    map: (user) => mapping.map(user),
    ...(mapping.digest ? { mappingDigest: mapping.digest } : {}),
    read,
    write,
    plan,
    remove,
    close: () => client.close(),
  };
}
