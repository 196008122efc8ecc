import {
  bearerToken,
  InspectError,
  type Route,
  type SimResponse,
  sameSecret,
  type Vendor,
} from '../kit/index.js';
import { preludeError, preludeErrorForStatus } from './errors.js';
import { checkPatchRequest } from './patch-request.js';
import { PreludeState, type PreludeStateOptions } from './state.js';

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
  const fail = (code: Parameters<typeof preludeError>[0]): SimResponse => preludeError(code);

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
        if (!state.isKnown(appId, userId)) return fail('user_not_found');
        state.patchProfile(appId, userId, check.profile);
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
        if (!state.hasApp(appId)) throw new InspectError(404, 'no such app');
        return {
          status: 200,
          body: { appId, userId: req.params.userID, known: state.isKnown(appId, req.params.userID!) },
        };
      },
    },
    {
      method: 'PUT',
      pattern: '/__sandbox/users/:userID',
      handler: (req) => {
        if (!state.setKnown(appOf(req.query), req.params.userID!, true))
          throw new InspectError(404, 'no such app');
        return { status: 204 };
      },
    },
    {
      method: 'DELETE',
      pattern: '/__sandbox/users/:userID',
      handler: (req) => {
        if (!state.setKnown(appOf(req.query), req.params.userID!, false))
          throw new InspectError(404, 'no such app');
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
