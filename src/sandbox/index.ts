import type { JSONWebKeySet } from 'jose';
import { type RateLimit, type Sim, startSim, type Vendor } from './kit/index.js';
import { PRELUDE_DEFAULT_API_KEY, PRELUDE_DEFAULT_APP_ID, preludeVendor } from './prelude/index.js';
import { SOURCE_DEFAULTS, sourceVendor } from './source/source-vendor.js';
import { syntheticUsers } from './source/synthetic-users.js';
import { SUNSHINE_DEFAULT_API_TOKEN, SUNSHINE_DEFAULT_EMAIL, sunshineVendor } from './sunshine/index.js';
import { ZEPHR_DEFAULTS, zephrVendor } from './zephr/zephr-vendor.js';

export type { FaultRule, RateLimit, Sim, TappedRequest } from './kit/index.js';

/**
 * The demo default: generous enough that a 1,000-user demo runs in seconds, yet a real token bucket, so a
 * client that ignores 429 is still caught. Tests that want to see 429s set tight limits.
 */
export const DEFAULT_SANDBOX_RATE_LIMIT: RateLimit = { perMinute: 6000, burst: 200 };

export interface SandboxOptions {
  /** @defaultValue '127.0.0.1' */
  host?: string;
  /** First port: source on P, Sunshine P+1, Zephr P+2, Prelude P+3. 0 = four ephemeral ports. @defaultValue 4100 */
  port?: number;
  /** Synthetic users in the source. @defaultValue 1000 */
  users?: number;
  /** Seed of the synthetic users, the ids Prelude does not know and the fault PRNG. @defaultValue 1 */
  seed?: number;
  /** The source answers every write with 403 (seed 002). @defaultValue false */
  readOnly?: boolean;
  /** Token bucket per credential on every simulator; null = unlimited. @defaultValue 6000/min, burst 200 */
  rateLimit?: RateLimit | null;
  /** JWKS whose keys Zephr accepts for RS256/ES256 tokens. @defaultValue none (HS256 only) */
  zephrJwks?: JSONWebKeySet;
  /** Share of source user ids Prelude does not know (`user_not_found`). @defaultValue 0.1 */
  preludeUnknownShare?: number;
  /**
   * Which user ids Prelude's profile PATCH accepts: `usr` (only Prelude's own `usr_` ids, as the real
   * service: a source id is never a Prelude user id) or `source` (legacy, explicit only: the source id
   * itself too, for the users Prelude knows; `env` then sets PRELUDE_LINK_BY=template). The Prelude
   * users are the same in both. @defaultValue 'usr'
   */
  preludeIds?: 'usr' | 'source';
}

export type SimName = 'source' | 'sunshine' | 'zephr' | 'prelude';

export interface Sandbox {
  urls: Record<SimName, string>;
  /** The variables `profile-sync sandbox` prints as `export` lines, SOURCE_URL ... PRELUDE_API_KEY. */
  env: Record<string, string>;
  sims: Record<SimName, Sim>;
  close(): Promise<void>;
}

export const SANDBOX_ORDER: readonly SimName[] = ['source', 'sunshine', 'zephr', 'prelude'];

/** Starts the four simulators (see docs/sandbox.md). Either all start or none stays open. */
export async function startSandbox(options: SandboxOptions = {}): Promise<Sandbox> {
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? 4100;
  const seed = options.seed ?? 1;
  const rateLimit = options.rateLimit === undefined ? DEFAULT_SANDBOX_RATE_LIMIT : options.rateLimit;

  // Sunshine sends X-Rate-Limit headers on every answer, so it reads the simulator's current limit.
  let sunshineSim: Sim | undefined;
  const users = options.users ?? 1000;
  const source = sourceVendor({ users, seed, readOnly: options.readOnly ?? false });
  const vendors: Record<SimName, Vendor> = {
    source,
    sunshine: sunshineVendor({ seed, rateLimit: () => sunshineSim?.rateLimit() ?? null }),
    zephr: zephrVendor(options.zephrJwks ? { jwks: options.zephrJwks } : {}),
    // Prelude's own users are seeded from the source's synthetic users (those of the seed at start).
    prelude: preludeVendor({
      seed,
      unknownShare: options.preludeUnknownShare ?? 0.1,
      ids: options.preludeIds ?? 'usr',
      population: () => syntheticUsers(seed, users),
      sourceUser: (id) => {
        const record = source.store.get(id);
        return record && typeof record.id === 'string'
          ? { id: record.id, email: typeof record.email === 'string' ? record.email : null }
          : undefined;
      },
    }),
  };

  const started: Partial<Record<SimName, Sim>> = {};
  try {
    for (const [i, name] of SANDBOX_ORDER.entries()) {
      started[name] = await startSim(vendors[name], {
        host,
        port: port === 0 ? 0 : port + i,
        rateLimit,
        faultSeed: seed,
      });
    }
  } catch (err) {
    await Promise.all(Object.values(started).map((s) => s.close()));
    throw err;
  }
  const sims = started as Record<SimName, Sim>;
  sunshineSim = sims.sunshine;
  const urls = {
    source: sims.source.url,
    sunshine: sims.sunshine.url,
    zephr: sims.zephr.url,
    prelude: sims.prelude.url,
  };
  return {
    urls,
    sims,
    env: {
      SOURCE_URL: urls.source,
      SOURCE_USERNAME: SOURCE_DEFAULTS.username,
      SOURCE_PASSWORD: SOURCE_DEFAULTS.password,
      SUNSHINE_URL: urls.sunshine,
      SUNSHINE_EMAIL: SUNSHINE_DEFAULT_EMAIL,
      SUNSHINE_API_TOKEN: SUNSHINE_DEFAULT_API_TOKEN,
      ZEPHR_URL: urls.zephr,
      ZEPHR_APP_ID: ZEPHR_DEFAULTS.appId,
      ZEPHR_JWT_SECRET: ZEPHR_DEFAULTS.jwtSecret,
      PRELUDE_URL: urls.prelude,
      PRELUDE_APP_ID: PRELUDE_DEFAULT_APP_ID,
      PRELUDE_API_KEY: PRELUDE_DEFAULT_API_KEY,
      // In the default `usr` mode, as against the real service, profile-sync's default linking applies
      // (batch_lookup by external_id, issue 10). The legacy `source` mode, asked for explicitly, accepts
      // source ids as Prelude ids: profile-sync's `template` linking.
      ...(options.preludeIds === 'source' ? { PRELUDE_LINK_BY: 'template' } : {}),
    },
    close: async () => {
      await Promise.all(SANDBOX_ORDER.map((name) => sims[name].close()));
    },
  };
}

/** The source's bearer token: an alternative to SOURCE_USERNAME/SOURCE_PASSWORD (not both, see config). */
export const SANDBOX_SOURCE_TOKEN = SOURCE_DEFAULTS.token;
