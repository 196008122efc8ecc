import type { Queue } from 'bullmq';
import type { SourceConnector, TargetConnector } from '../connectors/types.js';
import type { TargetId } from '../core/targets.js';
import type { Logger } from '../log.js';
import type { LinkStore } from '../store/links.js';
import type { RunKind } from '../store/run-record.js';
import type { RunStore } from '../store/run-store.js';
import type { StateStore } from '../store/state-store.js';
import type { BackoffPolicy } from './backoff.js';
import type { RunAlerts } from './run-alerts.js';

/** Engine settings the jobs read (from `config.sync`, see src/config/schema.ts). */
export interface EngineSettings {
  /** Attempts per error class; permanent, auth and unlinked never retry. */
  attempts: { transient: number; unknown: number };
  backoff: BackoffPolicy;
  unlinkedRecheckMs: number;
  /**
   * Source records the scan decides at once (one read of their states, one record of their outcomes,
   * one checkpoint), and jobs per `addBulk` call (at most 500). Issue 11.4: an unchanged re-run waits
   * mostly on the chunk's ~7 round trips; 5,000 makes them a tenth of what 500 made. @defaultValue 5000
   */
  chunkSize: number;
  /** Changed users per sync batch job (`SYNC_BATCH_SIZE`, jobs/sync-batch.ts); 1: a job per user. @defaultValue 16 */
  batchSize: number;
  /** Source page size (`SOURCE_PAGE_SIZE`). */
  pageSize: number;
  /** Source pages the scan requests ahead (`SOURCE_READ_AHEAD`). @defaultValue 4 */
  readAhead: number;
  /** Wait after a 429 without a usable `Retry-After`. @defaultValue 60000 */
  defaultRetryAfterMs: number;
  /**
   * The longest a 429 may pause a target (`RATE_LIMIT_MAX_WAIT`, issue 8.3); a longer Retry-After
   * stops the target for the run. @defaultValue 900000
   */
  rateLimitMaxWaitMs: number;
}

export type { RequestScope } from '../core/types.js';

/** BullMQ priorities (lower runs first; 0 would run before every prioritised job, so none uses it). */
export const PRIORITY: Record<RunKind, number> = {
  'single-user': 1,
  scheduled: 2,
  retry: 3,
  backfill: 10,
};

/** What a job handler gets besides its payload: stores, connectors and queues, never globals. */
export interface JobContext {
  logger: Logger;
  runs: RunStore;
  state: StateStore;
  links?: LinkStore;
  source: () => SourceConnector;
  targets: Partial<Record<TargetId, TargetConnector>>;
  syncQueues: Partial<Record<TargetId, Queue>>;
  settings: EngineSettings;
  /**
   * A 429 from `target`: lowers its effective rate limit for every process (AIMD,
   * src/queue/throttle.ts). `lowered` is false when another 429 of the same burst already did.
   */
  lowerRateLimit?: (target: TargetId) => Promise<{ lowered: boolean; limit: number } | undefined>;
  /** Issue 12.3: the operations alerts, when `ALERT_WEBHOOK_URL` is set. */
  alerts?: RunAlerts;
}
