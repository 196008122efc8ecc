import { compileMappings, type TargetMapping } from '../config/mapping.js';
import { type Config, enabledTargets, targetRateLimit } from '../config/schema.js';
import type { TargetId } from '../core/targets.js';
import { createPreludeConnector } from './prelude/target.js';
import { createSourceConnector as createIdentitySource } from './source/connector.js';
import { createSunshineConnector } from './sunshine/target.js';
import type { ConnectorDeps, SourceConnector, TargetConnector, Throttle } from './types.js';
import { createZephrConnector } from './zephr/target.js';

/**
 * Builds a target's connector from the whole configuration. Called only for enabled targets, so the
 * target's section is present (a target is enabled exactly when its `*_URL` is set).
 */
type Factory = (config: Config, mapping: TargetMapping, deps: ConnectorDeps) => TargetConnector;

/** One factory per target: a TargetId without an implementation fails to compile (`satisfies`). */
const factories = {
  sunshine: (config, mapping, deps) =>
    createSunshineConnector(
      {
        config: config.targets.sunshine!,
        http: config.http,
        mapping,
        rateLimit: targetRateLimit(config, 'sunshine'),
      },
      deps,
    ),
  zephr: (config, mapping, deps) =>
    createZephrConnector(
      {
        config: config.targets.zephr!,
        http: config.http,
        mapping,
        rateLimit: targetRateLimit(config, 'zephr'),
      },
      deps,
    ),
  prelude: (config, mapping, deps) =>
    createPreludeConnector(
      {
        config: config.targets.prelude!,
        http: config.http,
        mapping,
        rateLimit: targetRateLimit(config, 'prelude'),
      },
      deps,
    ),
} satisfies Record<TargetId, Factory>;

export interface TargetConnectorsOptions {
  /** Compiled mappings; compiled from `config` when absent. */
  mappings?: Record<TargetId, TargetMapping>;
  /** The engine's per-target rate limiters (each awaited before every request to that target). */
  throttles?: Partial<Record<TargetId, Throttle>>;
  /** Restrict to these targets (still only the enabled ones). @defaultValue every enabled target */
  only?: readonly TargetId[];
}

/**
 * A connector for every enabled target. `deps.dispatcher` (a MockAgent in tests) is shared when given;
 * otherwise each connector owns an undici Agent, closed by its `close()`. Each logger is a child with
 * `target` bound. Throws ConfigError for a problem only the connector can see (an unreadable Zephr key,
 * a Prelude user-id template without `{id}`).
 */
export function createTargetConnectors(
  config: Config,
  deps: Omit<ConnectorDeps, 'throttle'>,
  options: TargetConnectorsOptions = {},
): Partial<Record<TargetId, TargetConnector>> {
  const mappings = options.mappings ?? compileMappings(config);
  const out: Partial<Record<TargetId, TargetConnector>> = {};
  for (const target of enabledTargets(config)) {
    if (options.only && !options.only.includes(target)) continue;
    out[target] = factories[target](config, mappings[target], {
      ...deps,
      logger: deps.logger.child({ target }),
      throttle: options.throttles?.[target],
    });
  }
  return out;
}

/** Closes every connector of a registry result (their agents), ignoring none of the errors. */
export async function closeConnectors(connectors: Partial<Record<TargetId, TargetConnector>>): Promise<void> {
  await Promise.all(Object.values(connectors).map((c) => c.close()));
}

/** The source connector (identity service) from the whole configuration: the registry's counterpart for reads. */
export function createSourceConnector(config: Config, deps: ConnectorDeps): SourceConnector {
  return createIdentitySource(
    { config: config.source, http: config.http },
    { ...deps, logger: deps.logger.child({ target: 'source' }) },
  );
}
