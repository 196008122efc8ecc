import type { HttpConfig, PreludeConfig } from '../../config/schema.js';
import { ConfigError } from '../../core/config-error.js';
import { diffFields } from '../../core/diff.js';
import type {
  Change,
  FieldMap,
  ItemResult,
  PlannedRequest,
  RemoveResult,
  RequestScope,
  SourceUser,
} from '../../core/types.js';
import { createHttpClient, type HttpResponse } from '../http.js';
import { vendorErrorCode } from '../http-errors.js';
import {
  type ConnectorMapping,
  isObject,
  managedFields,
  RequestLog,
  unreadableRead,
  unsafePathSegment,
} from '../target-common.js';
import type { ConnectorDeps, TargetConnector } from '../types.js';
import { appFailure } from './app-errors.js';
import { createPreludeLinker } from './lookup.js';
import { clearBody, type PreludePatchBody, patchBody } from './payload.js';
import { compileUserIdTemplate, profilePath, userPath, usersPath } from './user-id.js';

export interface PreludeConnectorOptions {
  config: PreludeConfig;
  http: HttpConfig;
  /** The compiled Prelude mapping (plain string-valued keys, reserved keys refused at config load). */
  mapping: ConnectorMapping;
  /** Requests per minute (`targetRateLimit(config, 'prelude')`). */
  rateLimit: number;
}

/** The user `check()` patches with an empty profile: `user_not_found` for it proves URL, key and app. */
export const CHECK_USER_ID = 'profile-sync-connection-check';

/** What a PATCH answer means, per seed 004's responses. */
type PatchResult = { kind: 'ok' } | { kind: 'unlinked' };

/**
 * Prelude Session Management API (seed 004): one endpoint, `PATCH .../users/{userID}/profile`, that
 * merges string keys and answers 204. Seed 004 has no read endpoint; Prelude's user API has one
 * (`GET …/users/{userID}`, prelude-users-api.md), which `read()` uses for `--full` drift repair.
 */
export function createPreludeConnector(
  options: PreludeConnectorOptions,
  deps: ConnectorDeps,
): TargetConnector {
  const { config, mapping } = options;
  const userIdFor = compileUserIdTemplate(config.userIdTemplate);
  const unsafeApp = unsafePathSegment(config.appId);
  if (unsafeApp !== undefined) {
    throw new ConfigError(
      `PRELUDE_APP_ID ${unsafeApp}: it is one path segment of /v2/session/apps/{appID}/users/{userID}/profile`,
    );
  }
  const authorization = `Bearer ${config.apiKey}`;
  const client = createHttpClient({
    target: 'prelude',
    baseUrl: config.url,
    http: options.http,
    dispatcher: deps.dispatcher,
    logger: deps.logger,
    throttle: deps.throttle,
    headers: () => ({ authorization }),
  });

  const pathFor = (user: { id: string }, linkedId?: string) =>
    profilePath(config.appId, linkedId ?? userIdFor(user.id), user.id);
  const linker = createPreludeLinker(config, client, usersPath(config.appId));
  /**
   * Issue 10: only `PRELUDE_LINK_BY=template` derives a Prelude id from ours. In every other mode a user
   * without a link (imported, looked up or created) gets no request at all: a PATCH to a guessed id
   * could only answer user_not_found, or worse reach another user.
   */
  const unlinkedWithoutLink = (linkedId?: string) => linkedId === undefined && config.linkBy !== 'template';

  /** Seed 004's errors, each to what the engine must do. */
  function interpret(res: HttpResponse, userId: string | undefined): PatchResult {
    if (res.status === 204 || res.status === 200) return { kind: 'ok' };
    const code = vendorErrorCode(res.body);
    // 404 user_not_found: the user never used this app. An outcome, not an error, never retried.
    if (res.status === 404 && code === 'user_not_found') return { kind: 'unlinked' };
    // 404 app_not_found is a configuration problem, as is 403 session_disabled: every other user would
    // fail the same way, so the target is stopped (class auth) with the fix in the message.
    const appError = appFailure(config.appId, 'PATCH', res, userId);
    if (appError) throw appError;
    // 400 reserved_profile_key / invalid_request -> permanent; 401 -> auth; 429 -> rate_limited; 5xx ...
    throw client.fail({ method: 'PATCH', userId }, res);
  }

  async function patch(
    log: RequestLog,
    user: { id: string },
    body: PreludePatchBody,
    linkedId?: string,
  ): Promise<PatchResult> {
    const res = log.add(
      await client.request({
        method: 'PATCH',
        path: pathFor(user, linkedId),
        body,
        userId: user.id,
        scope: log.scope,
      }),
    );
    return interpret(res, user.id);
  }

  async function write(change: Change): Promise<ItemResult> {
    const diff = diffFields(change.previous, change.next);
    if (change.previous !== null && Object.keys(diff).length === 0) {
      return { outcome: 'unchanged', diff: {}, requests: [] };
    }
    if (unlinkedWithoutLink(change.linkedId)) return { outcome: 'unlinked', diff: {}, requests: [] };
    const log = new RequestLog(change.scope);
    const result = await patch(log, change.user, patchBody(change.previous, change.next), change.linkedId);
    if (result.kind === 'unlinked') return { outcome: 'unlinked', diff: {}, requests: log.records };
    return { outcome: change.previous === null ? 'created' : 'updated', diff, requests: log.records };
  }

  function plan(change: Change): PlannedRequest[] {
    if (change.previous !== null && Object.keys(diffFields(change.previous, change.next)).length === 0)
      return [];
    // Looked up and not found: a real run creates the user with its profile (one POST), or sends nothing.
    if (unlinkedWithoutLink(change.linkedId) && change.lookedUp)
      return linker.planCreate(change.user, change.next);
    if (unlinkedWithoutLink(change.linkedId)) {
      // config check: the lookup, then (when found) the PATCH at the id it answers.
      return [
        ...linker.planLookup([change.user]),
        ...linker.planCreate(change.user, change.next),
        {
          method: 'PATCH',
          path: profilePath(config.appId, '{usr_ id found}', change.user.id),
          body: patchBody(change.previous, change.next),
          note: 'only once the link is known; not found = unlinked, no PATCH',
        },
      ];
    }
    return [
      {
        method: 'PATCH',
        path: pathFor(change.user, change.linkedId),
        body: patchBody(change.previous, change.next),
        note:
          change.previous === null
            ? 'create (PATCH merges; 404 user_not_found = unlinked)'
            : 'patch changed keys ("" clears)',
      },
    ];
  }

  /**
   * Issue 10.4: `--full` reads the user (`GET …/users/{usr}`: `{"user": {…, "profile": {}}}`) and returns
   * the managed keys; `""` (how a PATCH clears a key) reads as absent. A user without a link, or 404:
   * undefined (nothing known: the write plans from the stored state, as without --full). An unreadable
   * 200 fails transient: it never stands for an empty profile.
   */
  async function read(
    user: SourceUser,
    linkedId?: string,
    scope?: RequestScope,
  ): Promise<FieldMap | undefined> {
    if (unlinkedWithoutLink(linkedId)) return undefined;
    const path = userPath(config.appId, linkedId ?? userIdFor(user.id), user.id);
    const res = await client.request({ method: 'GET', path, userId: user.id, scope });
    if (res.status === 404 && vendorErrorCode(res.body) === 'user_not_found') return undefined;
    if (res.status !== 200)
      throw (
        appFailure(config.appId, 'GET', res, user.id) ?? client.fail({ method: 'GET', userId: user.id }, res)
      );
    const profile = isObject(res.body) && isObject(res.body.user) ? res.body.user.profile : undefined;
    if (!isObject(profile)) throw unreadableRead('prelude', res, user.id, 'a user with a profile');
    const current: FieldMap = {};
    for (const k of mapping.fields) {
      const v = profile[k];
      if (typeof v === 'string' && v !== '') current[k] = v;
    }
    return current;
  }

  async function remove(
    user: SourceUser,
    previous: FieldMap | null,
    linkedId?: string,
    scope?: RequestScope,
  ): Promise<RemoveResult> {
    if (unlinkedWithoutLink(linkedId)) return { outcome: 'unchanged', action: 'absent', requests: [] };
    const log = new RequestLog(scope);
    const result = await patch(log, user, clearBody(managedFields(mapping.fields, previous, null)), linkedId);
    if (result.kind === 'unlinked') return { outcome: 'unchanged', action: 'absent', requests: log.records };
    return { outcome: 'removed', action: 'cleared', requests: log.records };
  }

  async function check(): Promise<void> {
    // 004 has no read endpoint. An empty PATCH for a user nobody has is harmless (it merges nothing)
    // and exercises key, app and session: 204 or user_not_found = fine; the rest throws classified.
    await patch(new RequestLog(), { id: CHECK_USER_ID }, { profile: {} }, CHECK_USER_ID);
  }

  return {
    id: 'prelude',
    limits: { requestsPerMinute: options.rateLimit },
    check,
    map: (user) => mapping.map(user),
    ...(mapping.digest ? { mappingDigest: mapping.digest } : {}),
    read,
    write,
    plan,
    remove,
    linker,
    close: () => client.close(),
  };
}
