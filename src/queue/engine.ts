import type { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { type Job, Queue, UnrecoverableError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Dispatcher } from 'undici';
import { type Config, enabledTargets, targetRateLimit } from '../config/schema.js';
import { closeConnectors, createTargetConnectors } from '../connectors/registry.js';
import { createSourceConnector } from '../connectors/source/connector.js';
import type { SourceConnector, TargetConnector, Throttle } from '../connectors/types.js';
import { ConfigError } from '../core/config-error.js';
import type { TargetId } from '../core/targets.js';
import { createLogger, type Logger } from '../log.js';
import type { forgetUser } from '../pipeline/erasure.js';
import { createRedisConnection } from '../store/connection.js';
import { createLinkStore, type LinkStore } from '../store/links.js';
import { RedisLayout, SCAN_QUEUE, syncQueueName } from '../store/redis-layout.js';
import { RedisErrorLog, redisErrorFields, whenRedisReady } from '../store/redis-open.js';
import { RunStore } from '../store/run-store.js';
import { StateStore } from '../store/state-store.js';
import { backoffStrategy } from './backoff.js';
import type { EngineSettings, JobContext } from './context.js';
import type { JobSet } from './job-definition.js';
import { type AlertTuning, createRunAlerts, type RunAlerts } from './run-alerts.js';
import { SlidingWindowThrottle } from './throttle.js';

type ErasureDeps = Parameters<typeof forgetUser>[0];

/**
 * Issue 8.11: the run's record vanished from Redis while the command waited for it (Redis flushed,
 * restarted without persistence, or the prefix's keys deleted). Exit 1 with this one line (no stack).
 */
export class RunVanishedError extends Error {
  override readonly name = 'RunVanishedError';
  constructor(readonly runId: string) {
    super(
      `run ${runId} vanished from Redis while it ran (its record is gone: was Redis flushed, restarted without persistence, or were the prefix's keys deleted?); its jobs and counts are lost, nothing more is done for it. Run the command again.`,
    );
    this.stack = `${this.name}: ${this.message}`;
  }
}

export interface EngineOptions {
  config: Config;
  /** The jobs to run (jobs/index.ts `JOBS`): the engine never imports a job body. */
  jobs: JobSet;
  /** @defaultValue a pino logger on stderr at `config.logLevel` */
  logger?: Logger;
  /** Used by every Queue, Worker and store; created from `config.redis.url` (and closed by `close()`) when absent. */
  connection?: Redis;
  /** Connectors built elsewhere (tests); otherwise built from `config` by the registry. */
  source?: SourceConnector;
  targets?: Partial<Record<TargetId, TargetConnector>>;
  /** undici dispatcher for connectors built here (a MockAgent in tests). */
  dispatcher?: Dispatcher;
  /** Restrict the engine to these enabled targets. @defaultValue every enabled target */
  only?: readonly TargetId[];
  /**
   * The rate-limit window in ms, for BullMQ's limiter and the throttle alike. Internal: tests shrink
   * it to prove "never more than L per window" in seconds.
   * @defaultValue `config.sync.rateWindowMs` (60000; `PROFILE_SYNC_TEST_RATE_WINDOW_MS`, tests only)
   */
  rateWindowMs?: number;
  /** Overrides of the settings derived from `config.sync` (tests use short backoffs). */
  settings?: Partial<EngineSettings>;
  /** Issue 12.3: delivery settings of the alerts (tests shorten the retries). @defaultValue src/connectors/alert-webhook.ts */
  alerts?: AlertTuning;
}

export interface StartWorkersOptions {
  /** Sync jobs per target in this process. @defaultValue `config.sync.concurrency` */
  concurrency?: number;
  /** Also run scan jobs. @defaultValue true */
  scan?: boolean;
  /**
   * How often each worker looks for stalled jobs (a dead worker's expired locks). The daemon shortens
   * it so a SIGKILLed worker's jobs move on promptly (docs/daemon.md). @defaultValue 30000 (BullMQ's)
   */
  stalledIntervalMs?: number;
  /**
   * Stalls a job may survive before BullMQ fails it (it kept killing its worker); such a job is then
   * settled `failed` (jobs/failed.ts). @defaultValue 2
   */
  maxStalledCount?: number;
  /** Tests only: a shorter job lock than `lockDurationMs`, so a stall shows in a second. @defaultValue `lockDurationMs` */
  lockDurationMs?: number;
}

/**
 * The sync engine: one `scan` queue and one `sync-<target>` queue per enabled target, their workers,
 * the per-target throttles, and the stores. Commands and the daemon use only this API:
 *
 * ```ts
 * const engine = await Engine.create({ config, jobs: JOBS });   // jobs/index.ts
 * await engine.startWorkers();                       // omit for enqueue-only
 * const runId = await startRun(engine, { kind: 'backfill' });   // jobs/run-actions.ts
 * const run = await waitForRun(engine, runId, { onProgress });
 * await engine.close();
 * ```
 */
export class Engine {
  readonly layout: RedisLayout;
  readonly runs: RunStore;
  readonly state: StateStore;
  readonly links?: LinkStore;
  /** Targets this engine drives (enabled, restricted by `only`). */
  readonly targets: TargetId[];
  readonly logger: Logger;
  readonly settings: EngineSettings;
  readonly scanQueue: Queue;
  readonly syncQueues: Partial<Record<TargetId, Queue>>;
  readonly jobs: JobSet;
  /** Issue 12.3: the operations alerts, when `ALERT_WEBHOOK_URL` is set (src/queue/run-alerts.ts). */
  readonly alerts?: RunAlerts;
  private workers: Worker[] = [];
  private readonly throttles: SlidingWindowThrottle[] = [];
  private sourceConnector?: SourceConnector;
  private closed = false;
  /** Runs whose record vanished under `waitForRun` (issue 8.11): what jobs still wrote is removed on close. */
  private readonly vanished = new Set<string>();

  /** `waitForRun` (jobs/run-actions.ts) found the run's record gone: close() removes what jobs still write. */
  markVanished(runId: string): void {
    this.vanished.add(runId);
  }
  /** Every Queue's, Worker's and the connection's 'error' listener: message only, never the command (issue 8.4). */
  private redisErrors: RedisErrorLog;

  private constructor(
    readonly config: Config,
    readonly connection: Redis,
    private readonly ownsConnection: boolean,
    private readonly connectors: Partial<Record<TargetId, TargetConnector>>,
    private readonly ownsConnectors: boolean,
    private readonly opts: EngineOptions,
    logger: Logger,
  ) {
    this.logger = logger;
    this.jobs = opts.jobs;
    this.redisErrors = new RedisErrorLog(logger, config.redis.url);
    this.layout = new RedisLayout(config.redis.prefix);
    this.runs = new RunStore(connection, this.layout, {
      keep: config.sync.runsKeep,
      maxAgeMs: config.sync.runsMaxAgeMs,
      itemsMax: config.sync.runItemsMax,
    });
    this.state = new StateStore(connection, this.layout);
    this.targets = Object.keys(connectors) as TargetId[];
    if (this.targets.includes('prelude')) this.links = createLinkStore(connection, config.redis.prefix);
    this.settings = {
      attempts: { transient: config.sync.attempts, unknown: config.sync.attemptsUnknown },
      backoff: { baseMs: config.sync.backoffBaseMs, maxMs: config.sync.backoffMaxMs },
      unlinkedRecheckMs: config.sync.unlinkedRecheckMs,
      chunkSize: 5000,
      batchSize: config.sync.batchSize,
      pageSize: config.source.pageSize,
      readAhead: config.source.readAhead,
      defaultRetryAfterMs: 60_000,
      rateLimitMaxWaitMs: config.sync.rateLimitMaxWaitMs,
      ...opts.settings,
    };
    const queueOpts = { connection, prefix: this.layout.bullPrefix };
    this.scanQueue = new Queue(SCAN_QUEUE, queueOpts);
    this.syncQueues = Object.fromEntries(
      this.targets.map((t) => [t, new Queue(syncQueueName(t), queueOpts)]),
    );
    this.sourceConnector = opts.source;
    this.alerts = createRunAlerts(
      config,
      { redis: connection, layout: this.layout, runs: this.runs, logger },
      opts.alerts,
    );
  }

  static async create(opts: EngineOptions): Promise<Engine> {
    const { config } = opts;
    const logger = opts.logger ?? createLogger({ level: config.logLevel });
    const only = opts.only ?? enabledTargets(config);
    for (const t of only) {
      if (!enabledTargets(config).includes(t) && !opts.targets?.[t]) {
        throw new ConfigError(`target ${t} is not enabled: set ${t.toUpperCase()}_URL`);
      }
    }
    const connection = opts.connection ?? createRedisConnection(config.redis);
    const redisErrors = new RedisErrorLog(logger, config.redis.url);
    if (!opts.connection) {
      // Fail fast (exit 2) when Redis refuses the credentials, instead of reconnecting for ever.
      redisErrors.watch(connection, 'connection');
      await whenRedisReady(connection, config.redis.url);
    }
    const windowMs = opts.rateWindowMs ?? config.sync.rateWindowMs;
    const throttles: Partial<Record<TargetId, SlidingWindowThrottle>> = {};
    const throttleFns: Partial<Record<TargetId, Throttle>> = {};
    const layout = new RedisLayout(config.redis.prefix);
    for (const t of only) {
      const th = new SlidingWindowThrottle({
        redis: connection,
        key: layout.throttle(t),
        adaptKey: layout.throttleAdapt(t),
        pauseKey: layout.throttlePause(t),
        limit: targetRateLimit(config, t),
        windowMs,
        marginMs: config.sync.rateLimitMarginMs,
      });
      throttles[t] = th;
      // The job attempt's scope comes with the request (`HttpRequest.scope`): its count, its abort.
      const fn: Throttle = async (s) => {
        const at = await th.acquire(s?.signal);
        if (s) s.sent++;
        return at;
      };
      // Issue 8.5: a 429 pauses the target for every process, capped by RATE_LIMIT_MAX_WAIT (issue 8.3).
      fn.pause = (ms) => th.pause(Math.min(ms, config.sync.rateLimitMaxWaitMs));
      fn.hold = (s) => th.hold(s?.signal);
      throttleFns[t] = fn;
    }
    let connectors: Partial<Record<TargetId, TargetConnector>>;
    const ownsConnectors = !opts.targets;
    try {
      connectors = opts.targets
        ? Object.fromEntries(only.filter((t) => opts.targets?.[t]).map((t) => [t, opts.targets![t]!]))
        : createTargetConnectors(
            config,
            { logger, dispatcher: opts.dispatcher },
            { only, throttles: throttleFns },
          );
    } catch (err) {
      if (!opts.connection) connection.disconnect();
      throw err;
    }
    const engine = new Engine(config, connection, !opts.connection, connectors, ownsConnectors, opts, logger);
    engine.redisErrors = redisErrors;
    // Without a listener BullMQ prints a Queue's errors (the failed command and its arguments, AUTH's
    // password included) with console.error on every reconnect.
    for (const q of [engine.scanQueue, ...Object.values(engine.syncQueues)])
      redisErrors.watch(q, `queue ${q.name}`);
    engine.throttles.push(...Object.values(throttles));
    engine.throttleByTarget = throttles;
    engine.throttleFns = throttleFns;
    return engine;
  }

  private throttleFns: Partial<Record<TargetId, Throttle>> = {};
  private throttleByTarget: Partial<Record<TargetId, SlidingWindowThrottle>> = {};

  /** Logs `emitter`'s errors (a Queue, Worker or connection on this engine's Redis) without secrets. */
  watchRedisErrors(emitter: EventEmitter, what: string): void {
    this.redisErrors.watch(emitter, what);
  }

  /** The throttle connectors built outside the engine must call before each request (tests). */
  throttleFor(target: TargetId): Throttle | undefined {
    return this.throttleFns[target];
  }

  /** A target's connector as this engine built it (throttled like the workers' requests): `forget` uses it. */
  connector(target: TargetId): TargetConnector | undefined {
    return this.connectors[target];
  }

  /** What `forgetUser` (src/pipeline/erasure.ts) needs, from this engine's stores, queues and connectors. */
  erasureDeps(): ErasureDeps {
    const { redis, layout } = this.runs.backing();
    return {
      redis,
      layout,
      state: this.state,
      ...(this.links ? { links: this.links } : {}),
      queues: this.syncQueues,
      connectors: { ...this.connectors },
      source: this.source(),
      logger: this.logger,
    };
  }

  /** The source connector (built on first use). */
  source(): SourceConnector {
    this.sourceConnector ??= createSourceConnector(
      { config: this.config.source, http: this.config.http },
      { logger: this.logger.child({ target: 'source' }), dispatcher: this.opts.dispatcher },
    );
    return this.sourceConnector;
  }

  /** What every job handler gets: stores, connectors, queues, settings (src/queue/context.ts). */
  jobContext(): JobContext {
    return {
      logger: this.logger,
      runs: this.runs,
      state: this.state,
      links: this.links,
      source: () => this.source(),
      targets: this.connectors,
      syncQueues: this.syncQueues,
      settings: this.settings,
      lowerRateLimit: async (target) => this.throttleByTarget[target]?.lower(),
      ...(this.alerts ? { alerts: this.alerts } : {}),
    };
  }

  /**
   * A job's lock must outlive its longest request, or a slow vendor gets a healthy job marked stalled
   * and run twice. One request can take connect + headers + body timeouts (5 + 15 + 15 s by default);
   * the lock is renewed every half lock while the worker lives, so it must outlast one request (a batch
   * job sends many, one after the other, each inside a renewed lock): twice one request's worst case
   * (70 s by default), at least 60 s, is ample.
   */
  get lockDurationMs(): number {
    const h = this.config.http;
    return Math.max(60_000, 2 * (h.connectTimeoutMs + h.headersTimeoutMs + h.bodyTimeoutMs));
  }

  /** Starts this process's workers: one per target queue (BullMQ limiter = the target's rate limit) and the scan worker. */
  async startWorkers(options: StartWorkersOptions = {}): Promise<void> {
    if (this.workers.length) return;
    const ctx = this.jobContext();
    const concurrency = options.concurrency ?? this.config.sync.concurrency;
    const base = {
      // Stored on each job as `processedBy`: which process ran it.
      name: `profile-sync-${hostname()}-${process.pid}`,
      connection: this.connection,
      prefix: this.layout.bullPrefix,
      lockDuration: options.lockDurationMs ?? this.lockDurationMs,
      maxStalledCount: options.maxStalledCount ?? 2,
      ...(options.stalledIntervalMs !== undefined ? { stalledInterval: options.stalledIntervalMs } : {}),
      settings: { backoffStrategy: backoffStrategy(this.settings.backoff) },
    };
    const targetJobs = new Map(this.jobs.jobs.filter((j) => j.queue === 'target').map((j) => [j.name, j]));
    const scanJob = this.jobs.jobs.find((j) => j.queue === 'scan');
    for (const t of this.targets) {
      // One queue per target carries writes and issue 5's removals alike: one rate limit for both.
      const processor = (job: Job) => {
        const def = targetJobs.get(job.name);
        if (!def) throw new UnrecoverableError(`no job named ${job.name} in the engine's job list`);
        return def.handler(job, ctx);
      };
      const w = new Worker(syncQueueName(t), processor, {
        ...base,
        concurrency,
        // The job-level gate, global across processes. The exact per-request limit is the throttle.
        limiter: {
          max: targetRateLimit(this.config, t),
          duration: this.opts.rateWindowMs ?? this.config.sync.rateWindowMs,
        },
      });
      this.watch(w, ctx);
    }
    if (options.scan !== false && scanJob) {
      this.watch(
        new Worker(SCAN_QUEUE, (job: Job) => scanJob.handler(job, ctx), { ...base, concurrency: 1 }),
        ctx,
      );
    }
    await Promise.all(this.workers.map((w) => w.waitUntilReady()));
  }

  /** This process's workers (the daemon hands their in-flight jobs back when a shutdown times out). */
  get runningWorkers(): readonly Worker[] {
    return this.workers;
  }

  private watch(w: Worker, ctx: JobContext): void {
    this.redisErrors.watch(w, `worker ${w.name}`);
    // A job failed by BullMQ itself (stalled more than maxStalledCount, or a throw before the handler
    // settled) must still settle, or its run never ends. Idempotent with the handlers' own settling.
    w.on('failed', (job, err) => {
      this.jobs
        .onFailed(job, err, ctx)
        .catch((e: unknown) =>
          this.logger.error(
            { err: e instanceof Error ? e.message : String(e), queue: w.name, job: job?.id },
            'could not settle a failed job',
          ),
        );
    });
    this.workers.push(w);
  }

  /** Job counts per target queue (for progress and the daemon's health). */
  async queueCounts(): Promise<Partial<Record<TargetId, Record<string, number>>>> {
    const out: Partial<Record<TargetId, Record<string, number>>> = {};
    for (const t of this.targets) {
      out[t] = await this.syncQueues[t]!.getJobCounts(
        'waiting',
        'active',
        'delayed',
        'prioritized',
        'failed',
      );
    }
    return out;
  }

  /**
   * Issue 8.11: jobs that were in flight when a run's record vanished write counters, items and the
   * scan field back into a partial record (no status, no TTL) that nothing would ever end or expire.
   * Once this process's workers stopped, such a record and its run keys are deleted; a run whose record
   * came back whole (a status) is left alone.
   */
  private async removeVanishedDebris(): Promise<void> {
    for (const runId of this.vanished) {
      try {
        const status = await this.connection.hget(this.layout.run(runId), 'status');
        if (status) continue;
        await this.runs.deleteRun(runId);
        this.logger.info({ runId }, 'partial record of the vanished run removed');
      } catch (err) {
        this.logger.warn(
          { runId, ...redisErrorFields(err, this.config.redis.url) },
          "could not remove the vanished run's partial record",
        );
      }
    }
  }

  /**
   * Stops taking jobs, lets in-flight ones finish (BullMQ `Worker.close()` waits for them), then
   * closes queues, connectors and the Redis connection it created.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.workers.map((w) => w.close()));
    this.workers = [];
    await this.removeVanishedDebris();
    await this.alerts?.close(); // bounded: deliveries still retrying, then the rest is given up (logged)
    for (const th of this.throttles) th.close();
    await Promise.all([this.scanQueue, ...Object.values(this.syncQueues)].map((q) => q.close()));
    if (this.ownsConnectors) await closeConnectors(this.connectors);
    if (this.sourceConnector && !this.opts.source) await this.sourceConnector.close();
    // QUIT on a connection waiting for Redis to come back would wait with it (issue 8.15): only a
    // live connection quits politely.
    if (this.ownsConnection && this.connection.status === 'ready')
      await this.connection.quit().catch(() => this.connection.disconnect());
    else if (this.ownsConnection) this.connection.disconnect();
  }
}
