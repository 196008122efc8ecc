import {
  basicCredentials,
  InspectError,
  type RateLimit,
  type Route,
  type SimRequest,
  type SimResponse,
  sameSecret,
  type Vendor,
} from '../kit/index.js';
import { codeForStatus, errorBody, SunshineError } from './errors.js';
import { parseIdentifierQuery } from './identifier-query.js';
import type { Identifier } from './identifiers.js';
import { parseProfileBody } from './profile-body.js';
import { RateHeaders } from './rate-headers.js';
import { SunshineStore, type SunshineStoreOptions } from './store.js';

/** Options of the Sunshine simulator. */
export interface SunshineVendorOptions extends SunshineStoreOptions {
  /** The agent's email of `{email}/token:{api_token}` basic auth. @defaultValue 'sync@sandbox.test' */
  email?: string;
  /** The API token. @defaultValue 'sandbox-sunshine-token' */
  apiToken?: string;
  /**
   * Whether the Profiles API is activated for the account (003: "It is activated in the Admin Center by
   * an admin"); when not, every API call is a 403. Also settable at run time. @defaultValue true
   */
  profilesEnabled?: boolean;
  /**
   * The simulator's current rate limit, read on every request to send `X-Rate-Limit` and
   * `X-Rate-Limit-Remaining` on successful answers too, as Zendesk does (pass `() => sim.rateLimit()`).
   * @defaultValue no headers on successful answers
   */
  rateLimit?: () => RateLimit | null;
}

export const SUNSHINE_DEFAULT_EMAIL = 'sync@sandbox.test';
export const SUNSHINE_DEFAULT_API_TOKEN = 'sandbox-sunshine-token';

/** The Sunshine vendor with its store, for tests that want to look inside. */
export interface SunshineVendor extends Vendor {
  readonly store: SunshineStore;
}

/** The Zendesk Sunshine Profiles API simulator (003, 001) as a kit `Vendor`. */
export function sunshineVendor(options: SunshineVendorOptions = {}): SunshineVendor {
  const email = options.email ?? SUNSHINE_DEFAULT_EMAIL;
  const apiToken = options.apiToken ?? SUNSHINE_DEFAULT_API_TOKEN;
  const store = new SunshineStore(options);
  const rate = new RateHeaders(options.rateLimit ?? (() => null), options.now);
  let profilesEnabled = options.profilesEnabled ?? true;

  /** Runs a handler: 403 when the API is off, SunshineError -> its answer, rate headers on every answer. */
  const api =
    (fn: (req: SimRequest) => SimResponse) =>
    (req: SimRequest): SimResponse => {
      let r: SimResponse;
      try {
        if (!profilesEnabled) {
          throw new SunshineError(403, 'The Profiles API is not activated for this account');
        }
        r = fn(req);
      } catch (err) {
        if (!(err instanceof SunshineError)) throw err;
        r = { status: err.status, body: errorBody(err.code, err.title) };
      }
      const headers = rate.take(req.credential);
      if (headers) r.headers = { ...r.headers, ...headers };
      return r;
    };

  const ok = (status: number, profile: unknown): SimResponse => ({ status, body: { profile } });
  const query = (req: SimRequest) => parseIdentifierQuery(req.query.get('identifier'));

  const routes: Route[] = [
    {
      method: 'GET',
      pattern: '/api/v2/users/:user_id/profiles',
      handler: api((req) => ({ status: 200, body: { profiles: store.profilesOfUser(req.params.user_id!) } })),
    },
    {
      method: 'PUT',
      pattern: '/api/v2/users/:user_id/profiles',
      handler: api((req) => {
        const q = query(req);
        const { profile, created } = store.putByQuery(
          q,
          parseProfileBody(req.body, 'put'),
          req.params.user_id,
        );
        return ok(created ? 201 : 200, profile);
      }),
    },
    {
      method: 'GET',
      pattern: '/api/v2/user_profiles',
      handler: api((req) => {
        const profile = store.findByQuery(query(req));
        if (!profile) throw new SunshineError(404, 'Profile not found');
        return ok(200, profile);
      }),
    },
    {
      method: 'PUT',
      pattern: '/api/v2/user_profiles',
      handler: api((req) => {
        const q = query(req);
        const { profile, created } = store.putByQuery(q, parseProfileBody(req.body, 'put'));
        return ok(created ? 201 : 200, profile);
      }),
    },
    {
      method: 'PATCH',
      pattern: '/api/v2/user_profiles',
      handler: api((req) => {
        const q = query(req);
        return ok(200, store.patchByQuery(q, parseProfileBody(req.body, 'patch')));
      }),
    },
    {
      method: 'GET',
      pattern: '/api/v2/user_profiles/:profile_id',
      handler: api((req) => {
        const profile = store.get(req.params.profile_id!);
        if (!profile) throw new SunshineError(404, 'Profile not found');
        return ok(200, profile);
      }),
    },
    {
      method: 'PUT',
      pattern: '/api/v2/user_profiles/:profile_id',
      handler: api((req) => {
        // 404 before 400: a body is only worth checking for a profile that exists.
        if (!store.get(req.params.profile_id!)) throw new SunshineError(404, 'Profile not found');
        return ok(200, store.replaceById(req.params.profile_id!, parseProfileBody(req.body, 'put')));
      }),
    },
    {
      method: 'PATCH',
      pattern: '/api/v2/user_profiles/:profile_id',
      handler: api((req) => {
        if (!store.get(req.params.profile_id!)) throw new SunshineError(404, 'Profile not found');
        return ok(200, store.patchById(req.params.profile_id!, parseProfileBody(req.body, 'patch')));
      }),
    },
    {
      method: 'DELETE',
      pattern: '/api/v2/user_profiles/:profile_id',
      handler: api((req) => {
        if (!store.delete(req.params.profile_id!)) throw new SunshineError(404, 'Profile not found');
        return { status: 204 };
      }),
    },
  ];

  const inspect: Route[] = [
    {
      method: 'GET',
      pattern: '/__sandbox/profiles',
      handler: (req) => {
        const userId = req.query.get('user_id');
        const all = store.listProfiles();
        return { status: 200, body: userId === null ? all : all.filter((p) => p.user_id === userId) };
      },
    },
    {
      method: 'GET',
      pattern: '/__sandbox/profiles/:id',
      handler: (req) => {
        const profile = store.get(req.params.id!);
        if (!profile) throw new InspectError(404, 'no such profile');
        return { status: 200, body: profile };
      },
    },
    {
      method: 'PATCH',
      pattern: '/__sandbox/profiles/:id',
      handler: (req) => {
        const profile = store.rawEdit(req.params.id!, parseRawEdit(req.body));
        if (!profile) throw new InspectError(404, 'no such profile');
        return { status: 200, body: profile };
      },
    },
    { method: 'GET', pattern: '/__sandbox/users', handler: () => ({ status: 200, body: store.listUsers() }) },
    {
      method: 'GET',
      pattern: '/__sandbox/users/:id',
      handler: (req) => {
        const user = store.getUser(req.params.id!);
        if (!user) throw new InspectError(404, 'no such user');
        return { status: 200, body: user };
      },
    },
    {
      method: 'POST',
      pattern: '/__sandbox/users',
      handler: (req) => {
        try {
          return { status: 201, body: store.addUser(parseNewUser(req.body)) };
        } catch (err) {
          if (err instanceof SunshineError) throw new InspectError(400, err.title);
          throw err;
        }
      },
    },
    {
      method: 'GET',
      pattern: '/__sandbox/settings',
      handler: () => ({ status: 200, body: { profilesEnabled } }),
    },
    {
      method: 'PUT',
      pattern: '/__sandbox/settings',
      handler: (req) => {
        const body = req.body as { profilesEnabled?: unknown } | undefined;
        if (typeof body?.profilesEnabled !== 'boolean') {
          throw new InspectError(400, 'expected {"profilesEnabled": boolean}');
        }
        profilesEnabled = body.profilesEnabled;
        return { status: 200, body: { profilesEnabled } };
      },
    },
  ];

  return {
    name: 'sunshine',
    store,
    routes,
    inspect,
    authenticate(req) {
      // 003: basic auth with "{email_address}/token:{api_token}".
      const given = basicCredentials(req.headers);
      if (given && given.user === `${email}/token` && sameSecret(given.password, apiToken)) {
        return { credential: email };
      }
      return {
        status: 401,
        headers: { 'www-authenticate': 'Basic realm="Web Password"' },
        body: errorBody('Unauthorized', "Couldn't authenticate you"),
      };
    },
    tooManyRequests(retryAfterSeconds, limit, remaining) {
      return {
        status: 429,
        headers: {
          'retry-after': String(retryAfterSeconds),
          'x-rate-limit': String(limit),
          'x-rate-limit-remaining': String(remaining),
        },
        body: errorBody('TooManyRequests', `Rate limit exceeded, retry after ${retryAfterSeconds} seconds`),
      };
    },
    errorResponse(status, message) {
      // An unknown path is Zendesk's InvalidEndpoint; a missing profile (ClientError) never comes here.
      const code = status === 404 ? 'InvalidEndpoint' : codeForStatus(status);
      return { status, body: errorBody(code, message) };
    },
    state: () => ({ profilesEnabled, profiles: store.listProfiles(), users: store.listUsers() }),
    reset() {
      store.reset();
      rate.clear();
      profilesEnabled = options.profilesEnabled ?? true;
    },
  };
}

function parseRawEdit(body: unknown): {
  name?: string;
  attributes?: Record<string, unknown>;
  identifiers?: Identifier[];
} {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new InspectError(400, 'expected {name?, attributes?, identifiers?}');
  }
  const { name, attributes, identifiers } = body as Record<string, unknown>;
  if (name !== undefined && typeof name !== 'string') throw new InspectError(400, 'name must be a string');
  if (
    attributes !== undefined &&
    (typeof attributes !== 'object' || attributes === null || Array.isArray(attributes))
  ) {
    throw new InspectError(400, 'attributes must be an object');
  }
  return {
    ...(name !== undefined && { name }),
    ...(attributes !== undefined && { attributes: attributes as Record<string, unknown> }),
    ...(identifiers !== undefined && { identifiers: parseIdentifierList(identifiers) }),
  };
}

function parseNewUser(body: unknown): { name?: string; external_id?: string; identities?: Identifier[] } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new InspectError(400, 'expected {name?, external_id?, identities?}');
  }
  const { name, external_id, identities } = body as Record<string, unknown>;
  if (name !== undefined && typeof name !== 'string') throw new InspectError(400, 'name must be a string');
  if (external_id !== undefined && typeof external_id !== 'string') {
    throw new InspectError(400, 'external_id must be a string');
  }
  return {
    ...(name !== undefined && { name }),
    ...(external_id !== undefined && { external_id }),
    ...(identities !== undefined && { identities: parseIdentifierList(identities) }),
  };
}

function parseIdentifierList(raw: unknown): Identifier[] {
  if (!Array.isArray(raw)) throw new InspectError(400, 'identifiers must be an array of {type, value}');
  return raw.map((item) => {
    const { type, value } = (item ?? {}) as Record<string, unknown>;
    if (typeof type !== 'string' || typeof value !== 'string' || !type || !value) {
      throw new InspectError(400, 'identifiers must be an array of {type, value} strings');
    }
    return { type, value };
  });
}
