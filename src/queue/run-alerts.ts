import type { Redis } from 'ioredis';
import type { Config } from '../config/schema.js';
import { type AlertWebhook, createAlertWebhook } from '../connectors/alert-webhook.js';
import { maskEmail } from '../core/masking.js';
import type { TargetId } from '../core/targets.js';
import type { Logger } from '../log.js';
import type { HeldAlert } from '../pipeline/deletions.js';
import type { RedisLayout } from '../store/redis-layout.js';
import type { RunRecord, RunStatus } from '../store/run-record.js';
import type { RunStore } from '../store/run-store.js';

/**
 * Issue 12.3: the operations alerts. Each is raised where its event is decided:
 *
 * | event                   | raised by                                                           |
 * |-------------------------|---------------------------------------------------------------------|
 * | `run_failed`            | the run ends `failed` (`maybeFinishRun`; `retryFailed`'s own finish) |
 * | `run_aborted`           | the run ends `aborted` (operator abort, vanished work), unless the abort was `--max-failure-rate`'s |
 * | `failure_rate_exceeded` | `checkFailureRate` asks the abort (src/queue/run-lifecycle.ts)       |
 * | `deletions_held`        | the safety brake holds the removals (jobs/reconcile-deletions.ts `alertHeld`) |
 * | `auth_failed`           | a target refused our credentials and was stopped for the run (jobs/user-steps.ts) |
 *
 * Fire and forget from the run's point of view: a raise returns at once, the delivery (retried with
 * backoff, src/connectors/alert-webhook.ts) runs beside the jobs, and no failure of it reaches a job.
 * At most one alert per event and run (per target for `auth_failed`): the process that sends claims
 * `{p}:alert:<runId>:<event>` with SET NX first, so two replicas, a replayed job or a second caller
 * of `checkFailureRate` send nothing more. The body carries ids, counts and reasons, never a secret;
 * emails in a reason are masked unless `RECORD_PII`.
 */
export type AlertEvent =
  | 'run_failed'
  | 'run_aborted'
  | 'failure_rate_exceeded'
  | 'deletions_held'
  | 'auth_failed';

/** How long a claim is kept: longer than any run lives, so a late replay still finds it. */
export const ALERT_CLAIM_TTL_MS = 30 * 86_400_000;

/** Start of the abort reason `checkFailureRate` writes: that abort was alerted as `failure_rate_exceeded`. */
export const FAILURE_RATE_ABORT = 'max failure rate exceeded';

/** What an alert's JSON body holds (Slack reads `text`; other receivers the structured fields). */
export interface AlertBody {
  text: string;
  event: AlertEvent;
  runId: string;
  kind?: string;
  status?: string;
  target?: TargetId;
  reason?: string;
  /** Per target: the non-zero outcome counts, and `stopped` when the target was stopped. */
  counts: Record<string, Record<string, number | string>>;
  /** Held deletions only: per target, known users, users gone, policy. */
  deletions?: Record<string, unknown>;
  /** `<OPS_PUBLIC_URL>/runs/<runId>`, when `OPS_PUBLIC_URL` is set. */
  link?: string;
  at: string;
}

export interface RunAlertsOptions {
  redis: Redis;
  layout: RedisLayout;
  runs: RunStore;
  webhook: AlertWebhook;
  logger: Logger;
  /** `OPS_PUBLIC_URL`. */
  publicUrl?: string;
  /** `RECORD_PII`: emails in reasons are left unmasked. @defaultValue false */
  recordPii?: boolean;
  /**
   * How long `close()` waits for deliveries still retrying (a one-off command exits after it).
   * @defaultValue 15000
   */
  closeTimeoutMs?: number;
}

/** Delivery settings (tests shorten the retries). */
export interface AlertTuning {
  /** @defaultValue `ALERT_RETRY_DELAYS_MS` (src/connectors/alert-webhook.ts) */
  retryDelaysMs?: readonly number[];
  /** @defaultValue 10000 */
  timeoutMs?: number;
  /** @defaultValue 15000 */
  closeTimeoutMs?: number;
}

/** The engine's alerts: undefined unless `ALERT_WEBHOOK_URL` is set. */
export function createRunAlerts(
  config: Config,
  deps: Pick<RunAlertsOptions, 'redis' | 'layout' | 'runs' | 'logger'>,
  tuning: AlertTuning = {},
): RunAlerts | undefined {
  const url = config.alerts.webhookUrl;
  if (!url) return undefined;
  return new RunAlerts({
    ...deps,
    webhook: createAlertWebhook({
      url,
      logger: deps.logger,
      ...(tuning.retryDelaysMs ? { retryDelaysMs: tuning.retryDelaysMs } : {}),
      ...(tuning.timeoutMs !== undefined ? { timeoutMs: tuning.timeoutMs } : {}),
    }),
    ...(config.ops.publicUrl ? { publicUrl: config.ops.publicUrl } : {}),
    recordPii: config.sync.recordPii,
    ...(tuning.closeTimeoutMs !== undefined ? { closeTimeoutMs: tuning.closeTimeoutMs } : {}),
  });
}

interface Extra {
  target?: TargetId;
  reason?: string;
  deletions?: Record<string, unknown>;
  /** The claim's event suffix (per-target events). */
  claim?: string;
}

export class RunAlerts {
  private readonly pending = new Set<Promise<void>>();
  private readonly stop = new AbortController();
  private readonly log: Logger;

  constructor(private readonly opts: RunAlertsOptions) {
    this.log = opts.logger.child({ component: 'alerts', receiver: opts.webhook.host });
  }

  /** The run ended: alerts `failed` and `aborted` (not an abort `--max-failure-rate` already alerted). */
  runEnded(runId: string, status: RunStatus | null): void {
    if (status === 'failed') this.raise(runId, 'run_failed', {});
    else if (status === 'aborted') this.raise(runId, 'run_aborted', {});
  }

  failureRateExceeded(runId: string, reason: string): void {
    this.raise(runId, 'failure_rate_exceeded', { reason });
  }

  authFailed(runId: string, target: TargetId, reason: string): void {
    this.raise(runId, 'auth_failed', { target, reason, claim: `auth_failed:${target}` });
  }

  deletionsHeld(alert: HeldAlert): void {
    this.raise(alert.runId, 'deletions_held', {
      reason: alert.reason,
      deletions: alert.targets as Record<string, unknown>,
    });
  }

  /** Deliveries in flight (tests wait for them). */
  async settled(): Promise<void> {
    while (this.pending.size) await Promise.allSettled([...this.pending]);
  }

  /**
   * Waits up to `closeTimeoutMs` for deliveries in flight, then gives up on the rest (logged). Bounded
   * even when a delivery waits on Redis that is away (issue 8.15: the engine's connection queues
   * commands until Redis answers): a shutdown never hangs on an alert.
   */
  async close(): Promise<void> {
    const timeoutMs = this.opts.closeTimeoutMs ?? 15_000;
    const inFlight = this.pending.size;
    if (!(await this.settledWithin(timeoutMs))) {
      this.log.error(
        { inFlight, waitedMs: timeoutMs },
        'shutting down with alerts still undelivered (the receiver kept failing, or Redis is away)',
      );
      this.stop.abort();
      await this.settledWithin(1_000);
    }
    await this.opts.webhook.close();
  }

  private async settledWithin(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const done = await Promise.race([
      this.settled().then(() => true),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(false), ms);
      }),
    ]);
    clearTimeout(timer);
    return done;
  }

  private raise(runId: string, event: AlertEvent, extra: Extra): void {
    if (this.stop.signal.aborted) return;
    const p = this.deliver(runId, event, extra)
      .catch((err: unknown) => {
        this.log.error({ runId, event, err: (err as Error).message }, 'alert could not be prepared');
      })
      .finally(() => this.pending.delete(p));
    this.pending.add(p);
  }

  private async deliver(runId: string, event: AlertEvent, extra: Extra): Promise<void> {
    const { redis, layout, runs } = this.opts;
    const run = await runs.get(runId);
    if (event === 'run_aborted' && run?.abortReason?.startsWith(FAILURE_RATE_ABORT)) return;
    const key = layout.alertSent(runId, extra.claim ?? event);
    const claimed = await redis.set(key, String(Date.now()), 'PX', ALERT_CLAIM_TTL_MS, 'NX');
    if (claimed !== 'OK') return; // another process, or an earlier call, sends it
    const body = alertBody(event, runId, run, extra, {
      ...(this.opts.publicUrl ? { publicUrl: this.opts.publicUrl } : {}),
      recordPii: this.opts.recordPii ?? false,
    });
    const r = await this.opts.webhook.send(body, this.stop.signal);
    if (r.delivered) this.log.info({ runId, event, tries: r.tries }, 'alert sent');
    else this.log.error({ runId, event, tries: r.tries, status: r.status }, 'alert lost');
  }
}

const EMAIL_IN_TEXT = /[^\s@"'<>(),;:]+@[^\s@"'<>(),;:]+\.[^\s@"'<>(),;:]+/g;

/** A free-text reason, with emails masked (unless RECORD_PII) and bounded length. */
export function scrubText(text: string, recordPii: boolean): string {
  const masked = recordPii ? text : text.replace(EMAIL_IN_TEXT, (m) => maskEmail(m));
  return masked.length > 500 ? `${masked.slice(0, 497)}...` : masked;
}

/** The JSON body of one alert: ids, counts and reasons only. */
export function alertBody(
  event: AlertEvent,
  runId: string,
  run: RunRecord | null,
  extra: Extra,
  opts: { publicUrl?: string; recordPii: boolean },
): AlertBody {
  const rawReason =
    extra.reason ??
    (event === 'run_failed' ? (run?.error ?? run?.scan.error) : undefined) ??
    (event === 'run_aborted' ? run?.abortReason : undefined);
  const reason = rawReason !== undefined ? scrubText(rawReason, opts.recordPii) : undefined;
  const counts: AlertBody['counts'] = {};
  for (const [t, c] of Object.entries(run?.targets ?? {})) {
    const row: Record<string, number | string> = {};
    for (const [o, n] of Object.entries(c.outcomes)) if (n > 0) row[o] = n;
    if (c.skipped) row.skipped = c.skipped;
    if (c.stopped) row.stopped = c.stoppedBy ?? 'auth';
    counts[t] = row;
  }
  const link = opts.publicUrl
    ? `${opts.publicUrl.replace(/\/+$/, '')}/runs/${encodeURIComponent(runId)}`
    : undefined;
  const what = `run ${runId}${run ? ` (${run.kind})` : ''}`;
  const because = reason ? `: ${reason}` : '';
  const headline: Record<AlertEvent, string> = {
    run_failed: `${what} FAILED${because}`,
    run_aborted: `${what} ABORTED${because}`,
    failure_rate_exceeded: `${what} ABORTED, failure rate too high${because}`,
    deletions_held: `DELETIONS HELD in ${what}${because}. Nobody was removed; check the source, then confirm with: profile-sync backfill --confirm-deletes ${runId}`,
    auth_failed: `AUTH FAILED for ${extra.target} in ${what}: target stopped for the run, no further requests sent to it; fix the credentials, then run profile-sync retry-failed${because ? ` (${reason})` : ''}`,
  };
  return {
    text: `profile-sync: ${headline[event]}${link ? ` ${link}` : ''}`,
    event,
    runId,
    ...(run ? { kind: run.kind, status: run.status } : {}),
    ...(extra.target ? { target: extra.target } : {}),
    ...(reason !== undefined ? { reason } : {}),
    counts,
    ...(extra.deletions ? { deletions: extra.deletions } : {}),
    ...(link ? { link } : {}),
    at: new Date().toISOString(),
  };
}
