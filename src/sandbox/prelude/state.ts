import { type PopulationUser, PreludeDirectory } from './directory.js';
import { inUnknownShare } from './known-users.js';
import { isUsrId } from './usr-ids.js';

/**
 * Which ids the profile PATCH accepts. `source` (legacy; this class's default,
 * kept for the PATCH-only tests; startSandbox defaults to `usr`): a `usr_` id of a Prelude user,
 * or any id the legacy known-user rule knows (the source id sent as-is). `usr`: only the `usr_` id of a
 * Prelude user, as the real Prelude (prelude-users-api.md: a source id is never a Prelude user id).
 */
export type PreludeIdMode = 'source' | 'usr';

export interface PreludeStateOptions {
  /** Apps that exist. @defaultValue ['app_sandbox'] */
  appIds?: string[];
  /** Apps whose session management is disabled (403 session_disabled). @defaultValue [] */
  sessionDisabledApps?: string[];
  /** Seed of the unknown-user rule. @defaultValue 1 */
  seed?: number;
  /** Share of user ids the apps do not know, 0..1. @defaultValue 0.1 */
  unknownShare?: number;
  /**
   * Decides whether an app knows a user id, replacing the default rule (known unless the hash of
   * (seed, id) falls in `unknownShare`). Ids added or removed through the inspection API override both.
   */
  isKnownUser?: (userId: string, appId: string) => boolean;
  /**
   * The source users each app's Prelude users are seeded from (read at start and on reset): all but the
   * unknown share, most with `external_id` = the source id. @defaultValue none
   */
  population?: () => Iterable<PopulationUser>;
  /**
   * The source's current record of a user, for a Prelude user added later by external_id (its email).
   * @defaultValue a search of `population`
   */
  sourceUser?: (userId: string) => PopulationUser | undefined;
  /** Share of source users known only by email (no external_id), 0..1. @defaultValue 0.05 */
  emailOnlyShare?: number;
  /** Which ids the PATCH accepts. @defaultValue 'source' */
  ids?: PreludeIdMode;
  /** Clock of created_at / updated_at and of new users' ids. @defaultValue Date.now */
  now?: () => number;
}

interface AppState {
  sessionEnabled: boolean;
  /** Explicit overrides from the inspection API: true = known, false = unknown. */
  overrides: Map<string, boolean>;
  profiles: Map<string, Record<string, string>>;
  /** The app's own Prelude users (`usr_` ids). */
  directory: PreludeDirectory;
}

/** The state of the Prelude simulator: apps, which users each knows, and their stored profiles. */
export class PreludeState {
  readonly seed: number;
  readonly unknownShare: number;
  readonly emailOnlyShare: number;
  readonly ids: PreludeIdMode;
  private readonly options: PreludeStateOptions;
  private apps = new Map<string, AppState>();

  constructor(options: PreludeStateOptions = {}) {
    this.options = options;
    this.seed = options.seed ?? 1;
    this.unknownShare = options.unknownShare ?? 0.1;
    this.emailOnlyShare = options.emailOnlyShare ?? 0.05;
    this.ids = options.ids ?? 'source';
    this.reset();
  }

  /** Back to the configured apps, no overrides, no profiles. */
  reset(): void {
    this.apps.clear();
    const disabled = new Set(this.options.sessionDisabledApps ?? []);
    for (const appId of this.options.appIds ?? ['app_sandbox']) {
      this.apps.set(appId, {
        sessionEnabled: !disabled.has(appId),
        overrides: new Map(),
        profiles: new Map(),
        directory: this.newDirectory(appId),
      });
    }
  }

  hasApp(appId: string): boolean {
    return this.apps.has(appId);
  }

  sessionEnabled(appId: string): boolean {
    return this.apps.get(appId)?.sessionEnabled ?? false;
  }

  /** Creates the app when absent, and sets whether its session management is enabled. */
  setApp(appId: string, settings: { sessionEnabled?: boolean } = {}): void {
    const app = this.apps.get(appId);
    if (app) {
      if (settings.sessionEnabled !== undefined) app.sessionEnabled = settings.sessionEnabled;
    } else {
      this.apps.set(appId, {
        sessionEnabled: settings.sessionEnabled ?? true,
        overrides: new Map(),
        profiles: new Map(),
        directory: this.newDirectory(appId),
      });
    }
  }

  private newDirectory(appId: string): PreludeDirectory {
    return new PreludeDirectory(
      {
        seed: this.seed,
        appId,
        unknownShare: this.unknownShare,
        emailOnlyShare: this.emailOnlyShare,
        now: this.options.now ?? Date.now,
      },
      this.options.population?.() ?? [],
    );
  }

  /** The app's Prelude users; undefined when the app does not exist. */
  directory(appId: string): PreludeDirectory | undefined {
    return this.apps.get(appId)?.directory;
  }

  /**
   * The Prelude user a PATCH's path id addresses, or undefined (404 user_not_found): a `usr_` id of the
   * app's users in both modes; in `source` mode, any other id the legacy rule knows is accepted as well,
   * as `{legacy: id}`, together with the Prelude user whose external_id it is, when there is one.
   */
  resolvePatchTarget(appId: string, userId: string): { usr?: string; legacy?: string } | undefined {
    const directory = this.apps.get(appId)?.directory;
    if (!directory) return undefined;
    if (isUsrId(userId) && directory.get(userId)) return { usr: userId };
    if (this.ids === 'usr') return undefined;
    if (!this.isKnown(appId, userId)) return undefined;
    const linked = directory.byExternalId(userId);
    return linked ? { usr: linked.id, legacy: userId } : { legacy: userId };
  }

  removeApp(appId: string): boolean {
    return this.apps.delete(appId);
  }

  isKnown(appId: string, userId: string): boolean {
    const app = this.apps.get(appId);
    if (!app) return false;
    const override = app.overrides.get(userId);
    if (override !== undefined) return override;
    if (this.options.isKnownUser) return this.options.isKnownUser(userId, appId);
    return !inUnknownShare(this.seed, userId, this.unknownShare);
  }

  /** Makes a user known (or unknown) to an app, overriding the rule. False when the app is absent. */
  setKnown(appId: string, userId: string, known: boolean): boolean {
    const app = this.apps.get(appId);
    if (!app) return false;
    app.overrides.set(userId, known);
    if (!known) app.profiles.delete(userId);
    return true;
  }

  /**
   * Adds a Prelude user for a source id unless one has that external_id (a user who signed up to the app
   * later): identified by the email given, else the seeded population's email, else a phone number.
   */
  addPreludeUser(
    appId: string,
    input: { externalId?: string; email?: string; phone?: string; profile?: Record<string, string> },
  ): { user: ReturnType<PreludeDirectory['create']>; created: boolean } | { conflict: string } | undefined {
    const directory = this.apps.get(appId)?.directory;
    if (!directory) return undefined;
    if (input.externalId !== undefined) {
      const existing = directory.byExternalId(input.externalId);
      if (existing) return { user: existing, created: false };
    }
    let email = input.email;
    if (email === undefined && input.phone === undefined && input.externalId !== undefined) {
      const source = this.options.sourceUser
        ? this.options.sourceUser(input.externalId)
        : [...(this.options.population?.() ?? [])].find((u) => u.id === input.externalId);
      if (typeof source?.email === 'string' && source.email.trim() !== '') email = source.email;
    }
    const identifiers: { type: 'email_address' | 'phone_number'; value: string }[] = [];
    if (email !== undefined) identifiers.push({ type: 'email_address', value: email });
    if (input.phone !== undefined) identifiers.push({ type: 'phone_number', value: input.phone });
    if (identifiers.length === 0) {
      const n = directory.size + 1;
      identifiers.push({ type: 'phone_number', value: `+3370${String(n).padStart(7, '0')}` });
    }
    const conflict = directory.conflict(identifiers, input.externalId);
    if (conflict) return { conflict };
    const user = directory.create({
      identifiers,
      ...(input.externalId !== undefined ? { externalId: input.externalId } : {}),
      ...(input.profile ? { profile: input.profile } : {}),
    });
    return { user, created: true };
  }

  /** Merges keys into the stored profile: sent keys replace, others stay; "" is stored as "". */
  patchProfile(appId: string, userId: string, patch: Record<string, string>): void {
    const app = this.apps.get(appId);
    if (!app) throw new Error(`unknown app ${appId}`);
    const current = app.profiles.get(userId);
    app.profiles.set(userId, { ...current, ...patch });
  }

  getProfile(appId: string, userId: string): Record<string, string> | undefined {
    const app = this.apps.get(appId);
    const profile = app?.profiles.get(userId);
    if (profile) return { ...profile };
    // A Prelude user's profile, by usr id or external_id, once something was written to it.
    const user = app?.directory.get(userId) ?? app?.directory.byExternalId(userId);
    return user && Object.keys(user.profile).length > 0 ? { ...user.profile } : undefined;
  }

  snapshot(): {
    seed: number;
    unknownShare: number;
    emailOnlyShare: number;
    ids: PreludeIdMode;
    apps: Record<
      string,
      {
        sessionEnabled: boolean;
        known: string[];
        unknown: string[];
        profiles: Record<string, Record<string, string>>;
      }
    >;
  } {
    const apps: ReturnType<PreludeState['snapshot']>['apps'] = {};
    for (const [appId, app] of this.apps) {
      const known: string[] = [];
      const unknown: string[] = [];
      for (const [userId, isKnown] of app.overrides) (isKnown ? known : unknown).push(userId);
      apps[appId] = {
        sessionEnabled: app.sessionEnabled,
        known,
        unknown,
        profiles: Object.fromEntries(app.profiles),
      };
    }
    return {
      seed: this.seed,
      unknownShare: this.unknownShare,
      emailOnlyShare: this.emailOnlyShare,
      ids: this.ids,
      apps,
    };
  }
}
