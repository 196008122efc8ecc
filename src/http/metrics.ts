import type { Queue } from 'bullmq';
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { targetRateLimit } from '../config/schema.js';
import type { TargetId } from '../core/targets.js';
import { OUTCOMES } from '../core/types.js';
import type { Logger } from '../log.js';
import type { RunRecord } from '../store/run-record.js';
import type { OpsEngine } from './ops-engine.js';
import type { RedisProbe } from './redis-probe.js';

export interface OpsMetricsOptions {
  engine: OpsEngine;
  probe: RedisProbe;
  version: string;
  logger?: Logger;
  /** A scrape gives up reading Redis after this long and answers with what it has. @defaultValue 5000 */
  collectTimeoutMs?: number;
  /** Node's default process metrics (`process_*`, `nodejs_*`). @defaultValue true */
  defaultMetrics?: boolean;
}

/** States reported per queue. `waiting` includes BullMQ's `prioritized` (every sync job has a priority). */
export const QUEUE_STATES = ['waiting', 'active', 'delayed', 'failed', 'paused'] as const;

/** Statuses after which a run record no longer changes (`held` waits for issue 5's confirmation). */
const ENDED = new Set(['completed', 'aborted', 'failed']);

/** Per-run counters that become Prometheus counters: run-record field -> metric. */
const PLAIN_COUNTERS = ['requests', 'planned', 'retries', 'rateLimited', 'skipped'] as const;

interface Seen {
  ended: boolean;
  kind: string;
  status: string;
  startedAt: number;
  endedAt?: number;
  targets: string[];
  stopped: Set<string>;
  /** Last values added to the counters, by `<counter>|<target>|<outcome>`. */
  values: Map<string, number>;
}

/**
 * The `/metrics` registry. Everything profile-sync-specific is read from Redis when Prometheus
 * scrapes, so the engine needs no hook and every process reports the same cluster-wide figures:
 *
 * - queue depths: `getJobCounts` of the scan queue and each sync queue;
 * - outcome, request, retry and 429 counters: the run records' counters (src/store/run-store.ts).
 *   Each scrape adds the growth of every run record since the previous scrape; finished runs are read
 *   once and then only remembered. At start-up the counters of runs that had already finished are
 *   taken as the baseline (not counted), so a restart does not replay history as a burst; runs still
 *   going are counted from zero. Every process sees the same runs: aggregate with `max`, not `sum`.
 * - last run per kind: end time, status, last success.
 *
 * Labels are bounded: target (3), outcome (6), state (5), kind (4), status (5). Never a user id.
 */
export class OpsMetrics {
  readonly registry = new Registry();
  private readonly seen = new Map<string, Seen>();
  private initialized = false;
  private inflight?: Promise<void>;

  private readonly redisUp: Gauge;
  private readonly queueJobs: Gauge;
  private readonly scanJobs: Gauge;
  private readonly queuePaused: Gauge;
  private readonly rateLimitTtl: Gauge;
  private readonly outcomes: Counter;
  private readonly plain: Record<(typeof PLAIN_COUNTERS)[number], Counter>;
  private readonly runsEnded: Counter;
  private readonly runsRunning: Gauge;
  private readonly lastEnd: Gauge;
  private readonly lastStatus: Gauge;
  private readonly lastSuccess: Gauge;
  private readonly targetStopped: Gauge;
  private readonly collectErrors: Counter;

  constructor(private readonly opts: OpsMetricsOptions) {
    const registers = [this.registry];
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
    new Gauge({
      name: 'profile_sync_build_info',
      help: 'Always 1; the version label says which profile-sync answers.',
      labelNames: ['version'],
      registers,
    }).set({ version: opts.version }, 1);
    this.redisUp = new Gauge({
      name: 'profile_sync_redis_up',
      help: '1 when Redis answered PING during this scrape, else 0 (queue and run metrics are then stale or absent).',
      registers,
    });
    this.queueJobs = new Gauge({
      name: 'profile_sync_queue_jobs',
      help: 'Jobs in a target sync queue by state (waiting includes prioritized; paused = waiting in a paused queue).',
      labelNames: ['target', 'state'],
      registers,
    });
    this.scanJobs = new Gauge({
      name: 'profile_sync_scan_queue_jobs',
      help: 'Jobs in the scan queue by state.',
      labelNames: ['state'],
      registers,
    });
    this.queuePaused = new Gauge({
      name: 'profile_sync_queue_paused',
      help: '1 when the queue is paused (an operator paused it), else 0.',
      labelNames: ['queue'],
      registers,
    });
    this.rateLimitTtl = new Gauge({
      name: 'profile_sync_rate_limit_wait_seconds',
      help: "Seconds until a target's sync queue takes jobs again: a 429's Retry-After pause, or the window's job budget used up; 0 otherwise.",
      labelNames: ['target'],
      registers,
    });
    this.outcomes = new Counter({
      name: 'profile_sync_outcomes_total',
      help: 'Users settled per target and outcome (created, updated, unchanged, unlinked, rejected, failed), from run records.',
      labelNames: ['target', 'outcome'],
      registers,
    });
    const plainHelp: Record<(typeof PLAIN_COUNTERS)[number], [string, string]> = {
      requests: [
        'profile_sync_requests_total',
        'HTTP requests sent to a target (every try, HTTP-level retries included).',
      ],
      planned: ['profile_sync_planned_requests_total', 'Requests dry runs would have sent to a target.'],
      retries: [
        'profile_sync_retries_total',
        'Sync job attempts that failed with a transient error and were retried with backoff.',
      ],
      rateLimited: [
        'profile_sync_rate_limited_total',
        'Rate-limit waits: 429 answers from a target, each of which paused its queue for Retry-After (no attempt spent).',
      ],
      skipped: [
        'profile_sync_skipped_total',
        'Sync jobs dropped because their run was aborted or their target stopped.',
      ],
    };
    this.plain = Object.fromEntries(
      PLAIN_COUNTERS.map((c) => [
        c,
        new Counter({ name: plainHelp[c][0], help: plainHelp[c][1], labelNames: ['target'], registers }),
      ]),
    ) as OpsMetrics['plain'];
    this.runsEnded = new Counter({
      name: 'profile_sync_runs_total',
      help: 'Runs that ended, by kind (scheduled, backfill, single-user, retry) and status (completed, aborted, failed).',
      labelNames: ['kind', 'status'],
      registers,
    });
    this.runsRunning = new Gauge({
      name: 'profile_sync_runs_running',
      help: 'Runs in progress by kind.',
      labelNames: ['kind'],
      registers,
    });
    this.lastEnd = new Gauge({
      name: 'profile_sync_last_run_end_time_seconds',
      help: 'Unix time the newest ended run of a kind ended.',
      labelNames: ['kind'],
      registers,
    });
    this.lastStatus = new Gauge({
      name: 'profile_sync_last_run_status',
      help: 'Status of the newest ended run of a kind: 1 for its status, 0 for the others.',
      labelNames: ['kind', 'status'],
      registers,
    });
    this.lastSuccess = new Gauge({
      name: 'profile_sync_last_success_time_seconds',
      help: 'Unix time the newest run of a kind that completed (status completed) ended.',
      labelNames: ['kind'],
      registers,
    });
    this.targetStopped = new Gauge({
      name: 'profile_sync_target_stopped',
      help: '1 when the newest run including the target stopped it for an authentication failure.',
      labelNames: ['target'],
      registers,
    });
    this.collectErrors = new Counter({
      name: 'profile_sync_metrics_collect_errors_total',
      help: 'Scrapes that could not read part of the queue or run state from Redis.',
      labelNames: ['part'],
      registers,
    });
  }

  /** Reads Redis (at most `collectTimeoutMs`), then renders the registry as Prometheus text. */
  async render(): Promise<{ contentType: string; body: string }> {
    this.inflight ??= this.refresh().finally(() => {
      this.inflight = undefined;
    });
    const timeoutMs = this.opts.collectTimeoutMs ?? 5_000;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.inflight,
      new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          this.collectErrors.inc({ part: 'timeout' });
          resolve();
        }, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  private async refresh(): Promise<void> {
    const ping = await this.opts.probe.ping();
    this.redisUp.set(ping.ok ? 1 : 0);
    if (!ping.ok) {
      // Stale depths would look like a healthy, idle queue: drop them while Redis is away.
      this.queueJobs.reset();
      this.scanJobs.reset();
      this.rateLimitTtl.reset();
      return;
    }
    await Promise.all([
      this.collectQueues().catch((err) => this.failed('queues', err)),
      this.collectRuns().catch((err) => this.failed('runs', err)),
    ]);
  }

  private failed(part: string, err: unknown): void {
    this.collectErrors.inc({ part });
    this.opts.logger?.warn({ err: (err as Error).message, part }, 'metrics: cannot read Redis');
  }

  private async collectQueues(): Promise<void> {
    const { engine } = this.opts;
    const scan = await queueDepth(engine.scanQueue);
    for (const s of QUEUE_STATES) this.scanJobs.set({ state: s }, scan.counts[s]);
    this.queuePaused.set({ queue: engine.scanQueue.name }, scan.paused ? 1 : 0);
    for (const t of engine.targets) {
      const q = engine.syncQueues[t]!;
      const d = await queueDepth(q);
      for (const s of QUEUE_STATES) this.queueJobs.set({ target: t, state: s }, d.counts[s]);
      this.queuePaused.set({ queue: q.name }, d.paused ? 1 : 0);
      // With the limiter's max, BullMQ reports a TTL only when the budget is spent or a 429 paused
      // the queue; without it, the window's TTL after any job would read as "rate limited".
      const ttl = await q.getRateLimitTtl(targetRateLimit(engine.config, t));
      this.rateLimitTtl.set({ target: t }, Math.max(0, ttl) / 1000);
    }
  }

  private async collectRuns(): Promise<void> {
    const { engine } = this.opts;
    const ids = await engine.connection.zrevrange(engine.layout.runs(), 0, -1);
    const listed = new Set(ids);
    for (const id of this.seen.keys()) if (!listed.has(id)) this.seen.delete(id); // pruned by retention
    for (const id of ids) {
      const prev = this.seen.get(id);
      if (prev?.ended) continue;
      const run = await engine.runs.get(id);
      if (!run) continue;
      const baseline = !this.initialized && ENDED.has(run.status);
      this.observe(run, prev, baseline);
    }
    this.initialized = true;
    this.publishLast(ids);
  }

  /** Adds the growth of one run record's counters since it was last seen. */
  private observe(run: RunRecord, prev: Seen | undefined, baseline: boolean): void {
    const values = new Map<string, number>();
    for (const [t, c] of Object.entries(run.targets)) {
      if (!c) continue;
      for (const o of OUTCOMES) values.set(`outcome|${t}|${o}`, c.outcomes[o]);
      for (const k of PLAIN_COUNTERS) values.set(`${k}|${t}|`, c[k]);
    }
    if (!baseline) {
      for (const [key, v] of values) {
        const delta = v - (prev?.values.get(key) ?? 0);
        if (delta <= 0) continue;
        const [counter, target, outcome] = key.split('|') as [string, TargetId, string];
        if (counter === 'outcome') this.outcomes.inc({ target, outcome }, delta);
        else this.plain[counter as (typeof PLAIN_COUNTERS)[number]].inc({ target }, delta);
      }
    }
    const ended = ENDED.has(run.status);
    if (ended && !baseline) this.runsEnded.inc({ kind: run.kind, status: run.status });
    const seen: Seen = {
      ended,
      kind: run.kind,
      status: run.status,
      startedAt: run.startedAt,
      targets: Object.keys(run.targets),
      stopped: new Set(
        Object.entries(run.targets)
          .filter(([, c]) => c?.stopped)
          .map(([t]) => t),
      ),
      values,
    };
    if (run.endedAt !== undefined) seen.endedAt = run.endedAt;
    this.seen.set(run.id, seen);
  }

  /** Gauges about the newest runs, from the remembered records (`ids` newest first). */
  private publishLast(ids: string[]): void {
    this.runsRunning.reset();
    this.lastEnd.reset();
    this.lastStatus.reset();
    this.lastSuccess.reset();
    this.targetStopped.reset();
    const endedKinds = new Set<string>();
    const successKinds = new Set<string>();
    const decidedTargets = new Set<string>();
    for (const t of this.opts.engine.targets) this.targetStopped.set({ target: t }, 0);
    for (const id of ids) {
      const s = this.seen.get(id);
      if (!s) continue;
      if (!s.ended) this.runsRunning.inc({ kind: s.kind });
      for (const t of s.targets) {
        if (decidedTargets.has(t)) continue;
        decidedTargets.add(t);
        this.targetStopped.set({ target: t }, s.stopped.has(t) ? 1 : 0);
      }
      if (!s.ended || s.endedAt === undefined) continue;
      if (!endedKinds.has(s.kind)) {
        endedKinds.add(s.kind);
        this.lastEnd.set({ kind: s.kind }, s.endedAt / 1000);
        for (const status of ENDED)
          this.lastStatus.set({ kind: s.kind, status }, status === s.status ? 1 : 0);
      }
      if (s.status === 'completed' && !successKinds.has(s.kind)) {
        successKinds.add(s.kind);
        this.lastSuccess.set({ kind: s.kind }, s.endedAt / 1000);
      }
    }
  }
}

/** One queue's depth by the states the metric reports. */
export async function queueDepth(
  q: Queue,
): Promise<{ counts: Record<(typeof QUEUE_STATES)[number], number>; paused: boolean }> {
  const [c, paused] = await Promise.all([
    q.getJobCounts('wait', 'prioritized', 'active', 'delayed', 'failed'),
    q.isPaused(),
  ]);
  const waiting = (c.wait ?? 0) + (c.prioritized ?? 0);
  return {
    counts: {
      // BullMQ 6 keeps the jobs of a paused queue in its wait list; reported apart, as older BullMQ did.
      waiting: paused ? 0 : waiting,
      paused: paused ? waiting : 0,
      active: c.active ?? 0,
      delayed: c.delayed ?? 0,
      failed: c.failed ?? 0,
    },
    paused,
  };
}
