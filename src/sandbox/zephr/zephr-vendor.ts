import type { JSONWebKeySet } from 'jose';
import { INSPECT_PREFIX, InspectError } from '../kit/server.js';
import { rateLimitHeaders } from '../kit/token-bucket.js';
import { INVALID_JSON, type SimRequest, type SimResponse, type Vendor } from '../kit/types.js';
import { findJwt } from './jwt-location.js';
import { JwtVerifier } from './jwt-verifier.js';

/** The sandbox Zephr tenant's settings unless told otherwise (printed by `profile-sync sandbox`). */
export const ZEPHR_DEFAULTS = {
  appId: 'profile-sync',
  jwtSecret: 'sandbox-zephr-jwt-secret',
} as const;

export interface ZephrVendorOptions {
  /** HS256 shared secret. @defaultValue 'sandbox-zephr-jwt-secret' */
  jwtSecret?: string;
  /** Public keys for RS256/ES256 tokens. @defaultValue none (HS256 only) */
  jwks?: JSONWebKeySet;
  /** Clock for `exp` checks, for tests. @defaultValue Date.now */
  now?: () => number;
}

export interface ZephrVendor extends Vendor {
  /** Extended profiles by appId, then by JWT subject. */
  readonly profiles: Map<string, Map<string, unknown>>;
}

/**
 * Seed 000 does not show Zephr's error bodies; the sandbox answers `{"message": ...}`, the shape of its
 * documented 200 (`{"message": "User extended profile updated"}`).
 */
const error = (status: number, message: string): SimResponse => ({ status, body: { message } });

const UPDATED = { message: 'User extended profile updated' } as const;

/**
 * Zephr's Extended Profile API (seed 000): `PUT /blaize/profile/{appId}` stores any JSON object or array
 * for the token's subject; `GET /blaize/profile/{appId}` reads it back.
 */
export function zephrVendor(options: ZephrVendorOptions = {}): ZephrVendor {
  const verifier = new JwtVerifier(options.jwtSecret ?? ZEPHR_DEFAULTS.jwtSecret, options.jwks, options.now);
  const profiles = new Map<string, Map<string, unknown>>();

  /** The subject of the request's JWT: authenticate() has just verified it, so this is a cache hit. */
  async function subject(req: SimRequest): Promise<string> {
    const v = await verifier.verify(findJwt(req) ?? '');
    if (!v) throw new Error('the JWT expired while the request was handled');
    return v.sub;
  }

  function checkAppId(appId: string): SimResponse | undefined {
    // Seed 000: the appId "cannot start with '_restricted'".
    if (appId.startsWith('_restricted'))
      return error(400, `appId may not start with '_restricted': ${appId}`);
    return undefined;
  }

  const vendor: ZephrVendor = {
    name: 'zephr',
    profiles,
    routes: [
      {
        method: 'PUT',
        pattern: '/blaize/profile/:appId',
        handler: async (req) => {
          const appId = req.params.appId!;
          const bad = checkAppId(appId);
          if (bad) return bad;
          const body = req.body;
          // Seed 000: "One of: object, Array"; anything else (no body, invalid JSON, a bare value) is invalid.
          if (body === undefined || body === INVALID_JSON || typeof body !== 'object' || body === null) {
            return error(400, 'the body must be a JSON object or array');
          }
          const sub = await subject(req);
          let app = profiles.get(appId);
          if (!app) {
            app = new Map();
            profiles.set(appId, app);
          }
          app.set(sub, body);
          return { status: 200, body: UPDATED };
        },
      },
      {
        method: 'GET',
        pattern: '/blaize/profile/:appId',
        handler: async (req) => {
          const appId = req.params.appId!;
          const bad = checkAppId(appId);
          if (bad) return bad;
          const sub = await subject(req);
          const profile = profiles.get(appId)?.get(sub);
          return profile === undefined
            ? error(404, `no extended profile for this user under appId ${appId}`)
            : { status: 200, body: profile };
        },
      },
    ],
    async authenticate(req) {
      const token = findJwt(req);
      const verified = token === undefined ? undefined : await verifier.verify(token);
      if (!verified) return error(401, 'a valid JWT is required (signature, exp and sub)');
      return { credential: verified.key };
    },
    tooManyRequests: (retryAfter, limit, remaining) => ({
      status: 429,
      headers: rateLimitHeaders(retryAfter, limit, remaining),
      body: { message: `Too many requests, retry in ${retryAfter} s` },
    }),
    errorResponse: error,
    state: () => ({
      profiles: [...profiles.values()].reduce((n, app) => n + app.size, 0),
      apps: Object.fromEntries([...profiles].map(([appId, app]) => [appId, app.size])),
    }),
    inspect: [
      {
        method: 'GET',
        pattern: `${INSPECT_PREFIX}profiles`,
        handler: () => ({
          status: 200,
          body: [...profiles].flatMap(([appId, app]) =>
            [...app].map(([sub, profile]) => ({ appId, sub, profile })),
          ),
        }),
      },
      {
        method: 'GET',
        pattern: `${INSPECT_PREFIX}profiles/:appId/:sub`,
        handler: (req) => {
          const profile = profiles.get(req.params.appId!)?.get(req.params.sub!);
          if (profile === undefined) throw new InspectError(404, 'no such profile');
          return { status: 200, body: profile };
        },
      },
    ],
    reset() {
      profiles.clear();
    },
  };
  return vendor;
}
