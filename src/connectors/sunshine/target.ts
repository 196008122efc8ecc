import type { HttpConfig, SunshineConfig } from '../../config/schema.js';
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
import { createHttpClient, type HttpMethod, type HttpResponse } from '../http.js';
import {
  type ConnectorMapping,
  isObject,
  managedFields,
  RequestLog,
  unreadableRead,
  unsafePathSegment,
} from '../target-common.js';
import type { ConnectorDeps, TargetConnector } from '../types.js';
import { decideWrite } from './decide.js';
import { identifierPath, identifierQuery, PROFILES_PATH, profilePath } from './identifier.js';
import {
  fieldsFromProfile,
  hasForeignData,
  mergeForPut,
  type ProfileBody,
  patchBody,
  profileBody,
  type SunshineProfile,
  sameContent,
  stripManaged,
} from './payload.js';

export interface SunshineConnectorOptions {
  config: SunshineConfig;
  http: HttpConfig;
  /** The compiled Sunshine mapping (`name`, `identifiers.<type>`, `attributes.<key>` fields). */
  mapping: ConnectorMapping;
  /** Requests per minute for this target (`targetRateLimit(config, 'sunshine')`). */
  rateLimit: number;
}

/** The identifier value `check()` looks up: a 404 for it proves URL and credentials work. */
export const CHECK_USER_ID = 'profile-sync-connection-check';

/**
 * Zendesk Sunshine Profiles API (seed 003) with the PATCH-versus-PUT rules of seed 001; the decision
 * table is in decide.ts. Every request addresses the profile by the identifier query
 * `{source}:{type}:external_id:{user id}` except the privacy removal, which uses the profile id it just read.
 */
export function createSunshineConnector(
  options: SunshineConnectorOptions,
  deps: ConnectorDeps,
): TargetConnector {
  const { config, mapping } = options;
  const owned = config.writeMode === 'owned';
  // Seed 003: basic auth with `{email_address}/token:{api_token}`.
  const authorization = `Basic ${Buffer.from(`${config.email}/token:${config.apiToken}`).toString('base64')}`;
  const client = createHttpClient({
    target: 'sunshine',
    baseUrl: config.url,
    http: options.http,
    dispatcher: deps.dispatcher,
    logger: deps.logger,
    throttle: deps.throttle,
    headers: () => ({ authorization }),
  });

  const queryOf = (id: string) => ({ identifier: identifierQuery(config, id) });

  async function send(
    log: RequestLog,
    method: HttpMethod,
    userId: string,
    body?: ProfileBody,
  ): Promise<HttpResponse> {
    return log.add(
      await client.request({
        method,
        path: PROFILES_PATH,
        query: queryOf(userId),
        body,
        userId,
        scope: log.scope,
      }),
    );
  }

  /** GET by identifier: the profile, or null on 404. */
  async function getProfile(log: RequestLog, userId: string): Promise<SunshineProfile | null> {
    const res = await send(log, 'GET', userId);
    if (res.status === 404) return null;
    if (res.status !== 200) throw client.fail({ method: 'GET', userId }, res);
    const profile = isObject(res.body) ? res.body.profile : undefined;
    // Seed 003 answers 200 with `{"profile": {...}}`. Anything else (empty, not JSON, truncated, another
    // shape: a proxy's page) is a read we cannot trust; the PUT built on it would drop the identifiers
    // and attributes of other systems, so nothing is written and the job retries (issue 8.2).
    if (!isObject(profile)) throw unreadableRead('sunshine', res, userId, '{"profile": {...}}');
    return profile as SunshineProfile;
  }

  /** PUT by identifier; 201 means Zendesk created the profile, 200 that it replaced one (seed 003). */
  async function put(log: RequestLog, userId: string, body: ProfileBody): Promise<'created' | 'updated'> {
    const res = await send(log, 'PUT', userId, body);
    if (res.status === 201) return 'created';
    if (res.status === 200) return 'updated';
    throw client.fail({ method: 'PUT', userId }, res);
  }

  /**
   * The create path (`previous` null, or a PATCH that found nothing): GET first so that a profile that
   * already exists (written by another system, or by a job whose result was lost) is merged, not wiped.
   * Owned (`SUNSHINE_WRITE_MODE=owned`): nobody else writes these profiles, so one PUT by identifier
   * creates the profile, or replaces the one a lost result left behind (seed 001: PUT by identifier
   * query never makes a second profile).
   */
  async function writeFresh(log: RequestLog, change: Change): Promise<ItemResult['outcome']> {
    if (owned) return put(log, change.userId, profileBody(change.next));
    const current = await getProfile(log, change.userId);
    if (current === null) return put(log, change.userId, profileBody(change.next));
    const body = mergeForPut(
      current,
      managedFields(mapping.fields, change.previous, change.next),
      change.next,
    );
    // A replayed job finds the profile already right: nothing to send.
    if (sameContent(current, body)) return 'unchanged';
    await put(log, change.userId, body);
    return 'updated';
  }

  async function write(change: Change): Promise<ItemResult> {
    const log = new RequestLog(change.scope);
    const diff = diffFields(change.previous, change.next);
    const decision = decideWrite(change.previous, change.next);
    let outcome: ItemResult['outcome'];
    switch (decision.kind) {
      case 'unchanged':
        outcome = 'unchanged';
        break;
      case 'fresh':
        outcome = await writeFresh(log, change);
        break;
      case 'patch': {
        const res = await send(log, 'PATCH', change.userId, patchBody(decision.changed));
        if (res.status === 200) outcome = 'updated';
        // Seed 001: "If the profile is not found by identifier query or profile id, the request returns
        // a 404 error": deleted outside profile-sync, so create it again (merging whatever is there).
        else if (res.status === 404) outcome = await writeFresh(log, change);
        else throw client.fail({ method: 'PATCH', userId: change.userId }, res);
        break;
      }
      case 'replace': {
        if (owned) {
          // Owned: the profile holds only what profile-sync last wrote (`previous`, from the state store),
          // so the replacement is built from that instead of a GET: one PUT.
          outcome = await put(log, change.userId, replaceFromPrevious(change));
          break;
        }
        // Seed 001: identifiers can only be changed, and fields only removed, by replacing the profile;
        // "make a preliminary GET request to get the existing profile and merge the data into the new one".
        const current = await getProfile(log, change.userId);
        if (current === null) outcome = await put(log, change.userId, profileBody(change.next));
        else {
          const managed = managedFields(mapping.fields, change.previous, change.next);
          await put(log, change.userId, mergeForPut(current, managed, change.next));
          outcome = 'updated';
        }
        break;
      }
    }
    return { outcome, diff: outcome === 'unchanged' ? {} : diff, requests: log.records };
  }

  /** The owned replace: what was last written (`previous`) with the managed fields set to `next`. */
  function replaceFromPrevious(change: Change): ProfileBody {
    const current = profileBody(change.previous ?? {}).profile as SunshineProfile;
    return mergeForPut(current, managedFields(mapping.fields, change.previous, change.next), change.next);
  }

  function plan(change: Change): PlannedRequest[] {
    const path = identifierPath(identifierQuery(config, change.userId));
    const decision = decideWrite(change.previous, change.next);
    switch (decision.kind) {
      case 'unchanged':
        return [];
      case 'fresh':
        if (owned) {
          const note = 'create (SUNSHINE_WRITE_MODE=owned: one PUT by identifier, nothing read)';
          return [{ method: 'PUT', path, body: profileBody(change.next), note }];
        }
        return [
          { method: 'GET', path, note: 'read current profile (404 = none)' },
          { method: 'PUT', path, body: profileBody(change.next), note: 'create (GET answered 404)' },
        ];
      case 'patch':
        return [{ method: 'PATCH', path, body: patchBody(decision.changed), note: 'patch changed fields' }];
      case 'replace': {
        if (owned) {
          const note = 'replace from what was last written (SUNSHINE_WRITE_MODE=owned, nothing read)';
          return [{ method: 'PUT', path, body: replaceFromPrevious(change), note }];
        }
        const current = profileBody(change.previous ?? {}).profile as SunshineProfile;
        const managed = managedFields(mapping.fields, change.previous, change.next);
        return [
          { method: 'GET', path, note: 'read current profile' },
          {
            method: 'PUT',
            path,
            body: mergeForPut(current, managed, change.next),
            note: 'replace: identifier changed or field removed (seed 001), foreign data kept',
          },
        ];
      }
    }
  }

  async function read(user: SourceUser, _linkedId?: string, scope?: RequestScope): Promise<FieldMap | null> {
    const profile = await getProfile(new RequestLog(scope), user.id);
    return profile === null ? null : fieldsFromProfile(profile, mapping.fields);
  }

  async function remove(
    user: SourceUser,
    previous: FieldMap | null,
    _linkedId?: string,
    scope?: RequestScope,
  ): Promise<RemoveResult> {
    const log = new RequestLog(scope);
    const current = await getProfile(log, user.id);
    if (current === null) return { outcome: 'unchanged', action: 'absent', requests: log.records };
    const id = current.id;
    // The id comes from the vendor's answer and becomes a path segment: `..` would address the collection.
    if (typeof id !== 'string' || unsafePathSegment(id) !== undefined) {
      throw new SyncError('permanent', `sunshine: profile of user ${user.id} has no usable id`, {
        target: 'sunshine',
        userId: user.id,
      });
    }
    const managed = managedFields(mapping.fields, previous, null);
    const stripped = stripManaged(current, managed);
    // Seed 001 (privacy): replace the profile with a version without our identifiers when something
    // else lives in it. A profile needs at least one identifier (seed 003, `identifiers` mandatory), so
    // when only foreign attributes would remain the profile cannot exist any more: it is deleted.
    if (hasForeignData(current, managed) && (stripped.profile.identifiers?.length ?? 0) > 0) {
      const res = log.add(
        await client.request({
          method: 'PUT',
          path: profilePath(id),
          body: stripped,
          userId: user.id,
          scope,
        }),
      );
      // 404: deleted by someone else between our GET and PUT; nothing of ours is left.
      if (res.status === 404) return { outcome: 'unchanged', action: 'absent', requests: log.records };
      if (res.status !== 200) throw client.fail({ method: 'PUT', userId: user.id }, res);
      return { outcome: 'removed', action: 'stripped', requests: log.records };
    }
    const res = log.add(
      await client.request({ method: 'DELETE', path: profilePath(id), userId: user.id, scope }),
    );
    // 404: deleted meanwhile, which is what we wanted.
    if (res.status !== 204 && res.status !== 200 && res.status !== 404) {
      throw client.fail({ method: 'DELETE', userId: user.id }, res);
    }
    return { outcome: 'removed', action: 'deleted', requests: log.records };
  }

  async function check(): Promise<void> {
    // A lookup of an identifier nobody has: 404 proves URL and credentials (401/403 would be auth, seed 003).
    const res = await send(new RequestLog(), 'GET', CHECK_USER_ID);
    if (res.status !== 200 && res.status !== 404) throw client.fail({ method: 'GET' }, res);
  }

  return {
    id: 'sunshine',
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
