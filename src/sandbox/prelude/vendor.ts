import {
  bearerToken,
  InspectError,
  type Route,
  type SimResponse,
  sameSecret,
  type Vendor,
} from '../kit/index.js';
import { IDENTIFIER_TYPES, type IdentifierType, normalizeEmail, type PreludeUser } from './directory.js';
import { preludeError, preludeErrorForStatus } from './errors.js';
import { checkPatchRequest } from './patch-request.js';
import { PreludeState, type PreludeStateOptions } from './state.js';
import { checkBatchLookup, checkCreateUser, checkPutExternalId } from './users-request.js';
import { isUsrId } from './usr-ids.js';

/** A user as `GET .../users/{userID}` and the list answer it (prelude-users-api.md). */
export function userBody(u: PreludeUser): Record<string, unknown> {
  return {
    id: u.id,
    status: u.status,
    identifiers: u.identifiers.map((i) => ({ type: i.type, value: i.value })),
    profile: { ...u.profile },
    created_at: u.created_at,
    updated_at: u.updated_at,
    ...(u.external_id !== undefined ? { external_id: u.external_id } : {}),
  };
}

/** A user as `batch_lookup` answers it: identifiers as `[{value}]`, with scopes (prelude-users-api.md). */
export function lookupBody(u: PreludeUser): Record<string, unknown> {
  return {
    id: u.id,
    status: u.status,
    identifiers: u.identifiers.map((i) => ({ value: i.value })),
    scopes: [...u.scopes],
    profile: { ...u.profile },
    created_at: u.created_at,
    updated_at: u.updated_at,
    ...(u.external_id !== undefined ? { external_id: u.external_id } : {}),
  };
}

/** Options of the Prelude simulator. */
export interface PreludeVendorOptions extends Omit<PreludeStateOptions, 'appIds'> {
  /** The bearer API key. @defaultValue 'sandbox-prelude-key' */
  apiKey?: string;
  /** The app that exists from the start. @defaultValue 'app_sandbox' */
  appId?: string;
  /** More apps that exist from the start. @defaultValue [] */
  moreAppIds?: string[];
}

export const PRELUDE_DEFAULT_API_KEY = 'sandbox-prelude-key';
export const PRELUDE_DEFAULT_APP_ID = 'app_sandbox';

/** The Prelude vendor with its state, for tests that want to look inside. */
export interface PreludeVendor extends Vendor {
  readonly state: () => ReturnType<PreludeState['snapshot']>;
  readonly prelude: PreludeState;
}

/** The Prelude Session Management API simulator (004, prelude-openapi.yaml) as a kit `Vendor`. */
export function preludeVendor(options: PreludeVendorOptions = {}): PreludeVendor {
  const apiKey = options.apiKey ?? PRELUDE_DEFAULT_API_KEY;
  const defaultApp = options.appId ?? PRELUDE_DEFAULT_APP_ID;
  const state = new PreludeState({ ...options, appIds: [defaultApp, ...(options.moreAppIds ?? [])] });
  const fail = (code: Parameters<typeof preludeError>[0], message?: string): SimResponse =>
    preludeError(code, message);
  /** The app's directory after the checks every operation makes first: the app, then its session. */
  const appGate = (appId: string): SimResponse | ReturnType<PreludeState['directory']> => {
    if (!state.hasApp(appId)) return fail('app_not_found');
    if (!state.sessionEnabled(appId)) return fail('session_disabled');
    return state.directory(appId);
  };
  const isResponse = (v: unknown): v is SimResponse =>
    typeof v === 'object' && v !== null && 'status' in v && typeof (v as SimResponse).status === 'number';

  const routes: Route[] = [
    {
      method: 'PATCH',
      pattern: '/v2/session/apps/:appID/users/:userID/profile',
      handler: (req) => {
        const appId = req.params.appID!;
        const userId = req.params.userID!;
        // Order (004 is silent): the app, its session setting, the body, then the user.
        if (!state.hasApp(appId)) return fail('app_not_found');
        if (!state.sessionEnabled(appId)) return fail('session_disabled');
        const check = checkPatchRequest(req.body);
        if (!check.ok) return fail(check.code);
        const target = state.resolvePatchTarget(appId, userId);
        if (!target) return fail('user_not_found');
        if (target.usr !== undefined) state.directory(appId)!.patchProfile(target.usr, check.profile);
        if (target.legacy !== undefined) state.patchProfile(appId, target.legacy, check.profile);
        return { status: 204 };
      },
    },
    {
      method: 'POST',
      pattern: '/v2/session/apps/:appID/users/batch_lookup',
      handler: (req) => {
        const dir = appGate(req.params.appID!);
        if (isResponse(dir)) return dir;
        const check = checkBatchLookup(req.body);
        if (!check.ok) return fail(check.code, check.message);
        const found = new Map<string, PreludeUser>();
        for (const id of check.externalIds) {
          const u = dir!.byExternalId(id);
          if (u) found.set(u.id, u);
        }
        for (const email of check.emails) {
          const u = dir!.byIdentifierValue('email_address', email);
          if (u) found.set(u.id, u);
        }
        return { status: 200, body: { users: [...found.values()].map(lookupBody) } };
      },
    },
    {
      method: 'GET',
      pattern: '/v2/session/apps/:appID/users/:userID',
      handler: (req) => {
        const dir = appGate(req.params.appID!);
        if (isResponse(dir)) return dir;
        const u = dir!.get(req.params.userID!);
        if (!u) return fail('user_not_found');
        return { status: 200, body: { user: userBody(u) } };
      },
    },
    {
      method: 'GET',
      pattern: '/v2/session/apps/:appID/users',
      handler: (req) => {
        const dir = appGate(req.params.appID!);
        if (isResponse(dir)) return dir;
        const type = req.query.get('identifier_type');
        const value = req.query.get('identifier_value');
        if (!IDENTIFIER_TYPES.includes(type as IdentifierType) || !value) {
          return fail(
            'invalid_request',
            'identifier_type (phone_number or email_address) and identifier_value are required',
          );
        }
        const u = dir!.byIdentifierValue(type as IdentifierType, value);
        return { status: 200, body: { users: u ? [userBody(u)] : [] } };
      },
    },
    {
      method: 'POST',
      pattern: '/v2/session/apps/:appID/users',
      handler: (req) => {
        const dir = appGate(req.params.appID!);
        if (isResponse(dir)) return dir;
        const check = checkCreateUser(req.body);
        if (!check.ok) return fail(check.code, check.message);
        const conflict = dir!.conflict(check.identifiers, check.externalId);
        if (conflict) return fail('conflict', `A user already exists: ${conflict}.`);
        const user = dir!.create({
          identifiers: check.identifiers,
          profile: check.profile,
          ...(check.externalId !== undefined ? { externalId: check.externalId } : {}),
        });
        return { status: 201, body: { id: user.id } };
      },
    },
    {
      method: 'PUT',
      pattern: '/v2/session/apps/:appID/users/:userID/external_id',
      handler: (req) => {
        const dir = appGate(req.params.appID!);
        if (isResponse(dir)) return dir;
        const check = checkPutExternalId(req.body);
        if (!check.ok) return fail(check.code, check.message);
        const userId = req.params.userID!;
        if (!dir!.get(userId)) return fail('user_not_found');
        const conflict = dir!.conflict([], check.externalId, userId);
        if (conflict) return fail('conflict', `A user already exists: ${conflict}.`);
        dir!.setExternalId(userId, check.externalId);
        return { status: 204 };
      },
    },
  ];

  const appOf = (query: URLSearchParams): string => query.get('app') ?? defaultApp;
  const inspect: Route[] = [
    {
      method: 'GET',
      pattern: '/__sandbox/profiles/:userID',
      handler: (req) => {
        const appId = appOf(req.query);
        const profile = state.getProfile(appId, req.params.userID!);
        if (!profile) throw new InspectError(404, 'no stored profile');
        return { status: 200, body: { appId, userId: req.params.userID, profile } };
      },
    },
    {
      method: 'GET',
      pattern: '/__sandbox/users/:userID',
      handler: (req) => {
        const appId = appOf(req.query);
        const dir = state.directory(appId);
        if (!dir) throw new InspectError(404, 'no such app');
        const userId = req.params.userID!;
        // By usr id or by external_id: the Prelude user, when there is one.
        const user = (isUsrId(userId) ? dir.get(userId) : undefined) ?? dir.byExternalId(userId);
        const known =
          state.ids === 'usr' ? user !== undefined : state.resolvePatchTarget(appId, userId) !== undefined;
        return {
          status: 200,
          body: { appId, userId, known, ...(user ? { user: lookupBody(user) } : {}) },
        };
      },
    },
    {
      method: 'GET',
      pattern: '/__sandbox/users',
      handler: (req) => {
        const appId = appOf(req.query);
        const dir = state.directory(appId);
        if (!dir) throw new InspectError(404, 'no such app');
        const externalId = req.query.get('external_id');
        const email = req.query.get('email');
        let users = dir.list();
        if (externalId !== null) users = users.filter((u) => u.external_id === externalId);
        if (email !== null) {
          users = users.filter((u) =>
            u.identifiers.some((i) => i.type === 'email_address' && i.value === normalizeEmail(email)),
          );
        }
        return { status: 200, body: { appId, users: users.map(lookupBody) } };
      },
    },
    {
      method: 'POST',
      pattern: '/__sandbox/users',
      handler: (req) => {
        const body = req.body as Record<string, unknown> | undefined;
        const str = (v: unknown) => v === undefined || (typeof v === 'string' && v !== '');
        if (
          typeof body !== 'object' ||
          body === null ||
          !str(body.external_id) ||
          !str(body.email) ||
          !str(body.phone) ||
          (body.profile !== undefined && !checkPatchRequest({ profile: body.profile }).ok)
        ) {
          throw new InspectError(
            400,
            'expected {"external_id"?: string, "email"?: string, "phone"?: string, "profile"?: {string: string}}',
          );
        }
        const added = state.addPreludeUser(appOf(req.query), {
          ...(body.external_id !== undefined ? { externalId: body.external_id as string } : {}),
          ...(body.email !== undefined ? { email: body.email as string } : {}),
          ...(body.phone !== undefined ? { phone: body.phone as string } : {}),
          ...(body.profile !== undefined ? { profile: body.profile as Record<string, string> } : {}),
        });
        if (!added) throw new InspectError(404, 'no such app');
        if ('conflict' in added) throw new InspectError(409, added.conflict);
        return { status: added.created ? 201 : 200, body: lookupBody(added.user) };
      },
    },
    {
      method: 'PUT',
      pattern: '/__sandbox/users/:userID',
      handler: (req) => {
        const appId = appOf(req.query);
        const userId = req.params.userID!;
        if (!state.setKnown(appId, userId, true)) throw new InspectError(404, 'no such app');
        // Also a Prelude user with this external_id (a user who joined the app later), in both modes.
        if (!isUsrId(userId)) state.addPreludeUser(appId, { externalId: userId });
        return { status: 204 };
      },
    },
    {
      method: 'DELETE',
      pattern: '/__sandbox/users/:userID',
      handler: (req) => {
        const appId = appOf(req.query);
        const userId = req.params.userID!;
        if (!state.setKnown(appId, userId, false)) throw new InspectError(404, 'no such app');
        // The Prelude user goes too (deleted in Prelude), found by usr id or external_id.
        const dir = state.directory(appId)!;
        const user = dir.get(userId) ?? dir.byExternalId(userId);
        if (user) dir.remove(user.id);
        return { status: 204 };
      },
    },
    {
      method: 'GET',
      pattern: '/__sandbox/apps',
      handler: () => ({ status: 200, body: state.snapshot().apps }),
    },
    {
      method: 'PUT',
      pattern: '/__sandbox/apps/:appID',
      handler: (req) => {
        const body = (req.body ?? {}) as { sessionEnabled?: unknown };
        if (
          typeof body !== 'object' ||
          (body.sessionEnabled !== undefined && typeof body.sessionEnabled !== 'boolean')
        ) {
          throw new InspectError(400, 'expected {"sessionEnabled"?: boolean}');
        }
        state.setApp(
          req.params.appID!,
          body.sessionEnabled === undefined ? {} : { sessionEnabled: body.sessionEnabled },
        );
        return {
          status: 200,
          body: { appId: req.params.appID, sessionEnabled: state.sessionEnabled(req.params.appID!) },
        };
      },
    },
    {
      method: 'DELETE',
      pattern: '/__sandbox/apps/:appID',
      handler: (req) => {
        if (!state.removeApp(req.params.appID!)) throw new InspectError(404, 'no such app');
        return { status: 204 };
      },
    },
  ];

  return {
    name: 'prelude',
    prelude: state,
    routes,
    inspect,
    authenticate(req) {
      const token = bearerToken(req.headers);
      // One key, so the credential id is a constant: the key itself must never reach the request log.
      if (token !== undefined && sameSecret(token, apiKey)) return { credential: 'api-key' };
      return { ...preludeError('unauthorized'), headers: { 'www-authenticate': 'Bearer' } };
    },
    tooManyRequests(retryAfterSeconds, limit, remaining) {
      return {
        ...preludeError('too_many_requests'),
        headers: {
          'retry-after': String(retryAfterSeconds),
          'x-ratelimit-limit': String(limit),
          'x-ratelimit-remaining': String(remaining),
        },
      };
    },
    errorResponse: (status) => preludeErrorForStatus(status),
    state: () => state.snapshot(),
    reset: () => state.reset(),
  };
}
