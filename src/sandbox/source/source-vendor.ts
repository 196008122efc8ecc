import { basicCredentials, bearerToken, sameSecret } from '../kit/auth.js';
import { rateLimitHeaders } from '../kit/token-bucket.js';
import { INVALID_JSON, type SimRequest, type SimResponse, type Vendor } from '../kit/types.js';
import { sourceInspectRoutes } from './source-inspect.js';
import { syntheticUsers } from './synthetic-users.js';
import { SORT_KEYS, type SortBy, type SortOrder, type UserFilter, UserStore } from './user-store.js';

/** The sandbox source's credentials unless told otherwise (printed by `profile-sync sandbox`). */
export const SOURCE_DEFAULTS = {
  username: 'profile-sync',
  password: 'sandbox-source-secret',
  token: 'sandbox-source-token',
} as const;

export interface SourceVendorOptions {
  /** Synthetic users generated from `seed`. @defaultValue 1000 */
  users?: number;
  /** @defaultValue 1 */
  seed?: number;
  /** Every write answers 403 (seed 002). @defaultValue false */
  readOnly?: boolean;
  /** Basic auth user. @defaultValue 'profile-sync' */
  username?: string;
  /** @defaultValue 'sandbox-source-secret' */
  password?: string;
  /** Accepted as `Authorization: Bearer <token>`. @defaultValue 'sandbox-source-token' */
  token?: string;
}

/**
 * A one-shot change of the users, made right after the source answered a `GET /user` page: a user
 * removed from, or inserted into, pages a scan has already read, as a busy identity service does
 * between two requests. Set through `POST /__sandbox/users/on-page` with `afterPage: n`: it fires after
 * the n-th list answer (`GET /user` without `idIn`) counted from when it was set.
 */
export interface PageHook {
  /** Value of the vendor's `pagesServed` after which the hook fires. */
  at: number;
  /** Ids removed (unknown ids ignored). */
  remove: string[];
  /** Users added (or replaced), as stored. */
  add: Record<string, unknown>[];
}

export interface SourceVendor extends Vendor {
  readonly store: UserStore;
  readOnly: boolean;
  /** Pending one-shot page hooks, in the order they were set. */
  pageHooks: PageHook[];
  /** `GET /user` list answers (200, without `idIn`) since start or reset. */
  pagesServed: number;
}

/** Camunda's error body: `{type, message}` (seed 002 points to its REST overview for the format). */
export function camundaError(status: number, type: string, message: string): SimResponse {
  return { status, body: { type, message } };
}

const invalid = (message: string) => camundaError(400, 'InvalidRequestException', message);

/** Camunda's UserResourceImpl text (vendor-facts.md). */
const READ_ONLY_MESSAGE = 'Identity service implementation is read-only.';

/** Types of the errors the kit asks for, as Camunda's REST layer names them. */
const ERROR_TYPES: Record<number, string> = {
  400: 'InvalidRequestException',
  404: 'NotFoundException',
  405: 'NotAllowedException',
  413: 'InvalidRequestException',
  500: 'ProcessEngineException',
  502: 'BadGatewayException',
  503: 'ServiceUnavailableException',
};

/**
 * The identity service of seed 002 (Camunda 7 user REST API): `GET /user`, `GET /user/count`,
 * `GET /user/{id}/profile`, `PUT /user/{id}/profile`, basic auth or a bearer token.
 */
export function sourceVendor(options: SourceVendorOptions = {}): SourceVendor {
  const seed = options.seed ?? 1;
  const userCount = options.users ?? 1000;
  const username = options.username ?? SOURCE_DEFAULTS.username;
  const password = options.password ?? SOURCE_DEFAULTS.password;
  const token = options.token ?? SOURCE_DEFAULTS.token;
  const initialReadOnly = options.readOnly ?? false;
  const store = new UserStore(syntheticUsers(seed, userCount));

  const vendor: SourceVendor = {
    name: 'source',
    store,
    readOnly: initialReadOnly,
    pageHooks: [],
    pagesServed: 0,
    decodesSlashBeforeRouting: true,
    routes: [
      {
        method: 'GET',
        pattern: '/user',
        handler: (req) => {
          const res = listUsers(store, req);
          if (res.status === 200) runPageHooks(vendor, req);
          return res;
        },
      },
      { method: 'GET', pattern: '/user/count', handler: (req) => countUsers(store, req) },
      { method: 'GET', pattern: '/user/:id/profile', handler: (req) => getProfile(store, req) },
      { method: 'PUT', pattern: '/user/:id/profile', handler: (req) => putProfile(vendor, req) },
    ],
    authenticate(req) {
      const basic = basicCredentials(req.headers);
      if (basic && basic.user === username && sameSecret(basic.password, password)) {
        return { credential: `basic:${basic.user}` };
      }
      const bearer = bearerToken(req.headers);
      if (bearer !== undefined && sameSecret(bearer, token)) return { credential: 'token' };
      // Camunda's basic-auth filter challenges with WWW-Authenticate; the JSON body is the REST error format.
      return {
        status: 401,
        headers: { 'www-authenticate': 'Basic realm="default"' },
        body: {
          type: 'NotAuthorizedException',
          message: 'Unauthorized: valid basic credentials are required',
        },
      };
    },
    tooManyRequests: (retryAfter, limit, remaining) => ({
      status: 429,
      headers: rateLimitHeaders(retryAfter, limit, remaining),
      body: { type: 'TooManyRequestsException', message: `Rate limit exceeded, retry in ${retryAfter} s` },
    }),
    errorResponse: (status, message) => camundaError(status, ERROR_TYPES[status] ?? 'RestException', message),
    state: () => ({ users: store.size, readOnly: vendor.readOnly, seed }),
    inspect: [],
    reset() {
      store.clear();
      for (const u of syntheticUsers(seed, userCount)) store.put(u);
      vendor.readOnly = initialReadOnly;
      vendor.pageHooks = [];
      vendor.pagesServed = 0;
    },
  };
  vendor.inspect = sourceInspectRoutes(vendor);
  return vendor;
}

/** Fires (and drops) the hooks set for the page just answered; the answer was built before. */
function runPageHooks(vendor: SourceVendor, req: SimRequest): void {
  if (req.query.get('idIn') !== null) return;
  const n = ++vendor.pagesServed;
  const due = vendor.pageHooks.filter((h) => h.at === n);
  if (due.length === 0) return;
  vendor.pageHooks = vendor.pageHooks.filter((h) => h.at !== n);
  for (const h of due) {
    for (const id of h.remove) vendor.store.delete(id);
    for (const u of h.add) vendor.store.put(u);
  }
}

function nonNegativeInt(req: SimRequest, name: string): number | SimResponse | undefined {
  const raw = req.query.get(name);
  if (raw === null) return undefined;
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isInteger(n) || n < 0 || n > 2 ** 31 - 1) {
    return invalid(`Cannot set query parameter '${name}' to value '${raw}'`);
  }
  return n;
}

function filterOf(req: SimRequest): UserFilter {
  const q = req.query;
  const f: UserFilter = {};
  for (const name of [
    'id',
    'firstName',
    'firstNameLike',
    'lastName',
    'lastNameLike',
    'email',
    'emailLike',
  ] as const) {
    const v = q.get(name);
    if (v !== null) f[name] = v;
  }
  const idIn = q.get('idIn');
  if (idIn !== null) f.idIn = idIn.split(',');
  return f;
}

function listUsers(store: UserStore, req: SimRequest): SimResponse {
  const sortBy = req.query.get('sortBy');
  const sortOrder = req.query.get('sortOrder');
  if ((sortBy === null) !== (sortOrder === null)) {
    return invalid('Only a single sorting parameter specified. sortBy and sortOrder required');
  }
  let sort: { by: SortBy; order: SortOrder } | undefined;
  if (sortBy !== null && sortOrder !== null) {
    if (!Object.hasOwn(SORT_KEYS, sortBy))
      return invalid(`Cannot set query parameter 'sortBy' to value '${sortBy}'`);
    if (sortOrder !== 'asc' && sortOrder !== 'desc') {
      return invalid(`Cannot set query parameter 'sortOrder' to value '${sortOrder}'`);
    }
    sort = { by: sortBy as SortBy, order: sortOrder };
  }
  const firstResult = nonNegativeInt(req, 'firstResult');
  if (typeof firstResult === 'object') return firstResult;
  const maxResults = nonNegativeInt(req, 'maxResults');
  if (typeof maxResults === 'object') return maxResults;
  return { status: 200, body: store.query(filterOf(req), sort, firstResult ?? 0, maxResults) };
}

function countUsers(store: UserStore, req: SimRequest): SimResponse {
  return { status: 200, body: { count: store.count(filterOf(req)) } };
}

const notFound = (id: string) => invalidWith(404, `User with id ${id} does not exist`);

function invalidWith(status: number, message: string): SimResponse {
  return camundaError(status, 'InvalidRequestException', message);
}

function getProfile(store: UserStore, req: SimRequest): SimResponse {
  const id = req.params.id!;
  const user = store.get(id);
  return user ? { status: 200, body: user } : notFound(id);
}

const PROFILE_FIELDS = new Set(['id', 'firstName', 'lastName', 'email']);

/**
 * Seed 002: 204; 403 when read-only; 404 unknown. A content type other than JSON (415) and a body that is
 * not a JSON object (400) fail in the JAX-RS layer, before the resource runs; then read-only, then
 * existence, as Camunda's UserResourceImpl.
 */
function putProfile(vendor: SourceVendor, req: SimRequest): SimResponse {
  const id = req.params.id!;
  // Camunda's resource consumes application/json only; JAX-RS refuses anything else before it runs.
  const type = req.headers['content-type'];
  if (!type || !/^application\/json\s*(;|$)/i.test(type)) {
    return camundaError(415, 'NotSupportedException', 'HTTP 415 Unsupported Media Type');
  }
  const body = req.body;
  if (body === INVALID_JSON) return invalid('The request body is not valid JSON');
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return invalid('The request body must be a JSON object: {id, firstName, lastName, email}');
  }
  if (vendor.readOnly) return camundaError(403, 'InvalidRequestException', READ_ONLY_MESSAGE);
  if (!vendor.store.has(id)) return notFound(id);
  const profile = body as Record<string, unknown>;
  for (const key of Object.keys(profile)) {
    if (!PROFILE_FIELDS.has(key)) return invalid(`Unrecognized field "${key}" in the user profile`);
    const v = profile[key];
    if (v !== null && typeof v !== 'string')
      return invalid(`The profile field "${key}" must be a string or null`);
  }
  if (profile.id !== undefined && profile.id !== null && profile.id !== id) {
    return invalid(
      `The id in the body ('${String(profile.id)}') does not match the user id in the path ('${id}')`,
    );
  }
  vendor.store.updateProfile(id, profile as { firstName?: string; lastName?: string; email?: string });
  return { status: 204 };
}
