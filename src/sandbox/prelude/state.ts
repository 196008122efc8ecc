import { inUnknownShare } from './known-users.js';

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
}

interface AppState {
  sessionEnabled: boolean;
  /** Explicit overrides from the inspection API: true = known, false = unknown. */
  overrides: Map<string, boolean>;
  profiles: Map<string, Record<string, string>>;
}

/** The state of the Prelude simulator: apps, which users each knows, and their stored profiles. */
export class PreludeState {
  readonly seed: number;
  readonly unknownShare: number;
  private readonly options: PreludeStateOptions;
  private apps = new Map<string, AppState>();

  constructor(options: PreludeStateOptions = {}) {
    this.options = options;
    this.seed = options.seed ?? 1;
    this.unknownShare = options.unknownShare ?? 0.1;
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
      });
    }
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

  /** Merges keys into the stored profile: sent keys replace, others stay; "" is stored as "". */
  patchProfile(appId: string, userId: string, patch: Record<string, string>): void {
    const app = this.apps.get(appId);
    if (!app) throw new Error(`unknown app ${appId}`);
    const current = app.profiles.get(userId);
    app.profiles.set(userId, { ...current, ...patch });
  }

  getProfile(appId: string, userId: string): Record<string, string> | undefined {
    const profile = this.apps.get(appId)?.profiles.get(userId);
    return profile && { ...profile };
  }

  snapshot(): {
    seed: number;
    unknownShare: number;
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
    return { seed: this.seed, unknownShare: this.unknownShare, apps };
  }
}
