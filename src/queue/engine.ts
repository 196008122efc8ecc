import type { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { type Job, Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Dispatcher } from 'undici';
import { type ConfirmResult, confirmHeldDeletions } from '../../jobs/reconcile-deletions.js';
import * as removeJob from '../../jobs/remove.js';
import * as scanJob from '../../jobs/scan.js';
import * as syncJob from '../../jobs/sync.js';
import { ConfigError } from '../core/config-error.js';
import { type Config, enabledTargets, targetRateLimit } from '../config/schema.js';
import { type TargetId } from '../core/targets.js';
import { createLinkStore, type LinkStore } from '../store/links.js';
import { closeConnectors, createTargetConnectors } from '../connectors/registry.js';
import { createSourceConnector } from '../connectors/source/connector.js';
import type { SourceConnector, TargetConnector, Throttle } from '../connectors/types.js';
import { createLogger, type Logger } from '../log.js';
import { deletionSettings } from '../pipeline/deletions.js';
import type { forgetUser } from '../pipeline/erasure.js';
import type { RunKind, RunOptions, RunRecord } from '../store/run-record.js';
import { RunStore } from '../store/run-store.js';
import { StateStore } from '../store/state-store.js';
import { backoffStrategy } from './backoff.js';
import { createRedisConnection } from '../store/connection.js';
import { type EngineSettings, type JobContext, newRequestScope } from './context.js';
import { settleFailedJob } from './failed-jobs.js';
import { RedisLayout, SCAN_QUEUE, syncQueueName } from '../store/redis-layout.js';
import { RedisErrorLog, redisErrorFields, whenRedisReady } from '../store/redis-open.js';
import { checkFailureRate, maybeFinishRun } from './run-lifecycle.js';
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
}

export interface StartRunRequest {
  kind: RunKind;
  /** @defaultValue every target of the engine */
  targets?: TargetId[];
  users?: string[];
  limit?: number;
  /** @defaultValue false */
  dryRun?: boolean;
  /** @defaultValue false */
  full?: boolean;
  /** @defaultValue `config.sync.recordPii` */
  showPii?: boolean;
  /** Keep planned requests for `--plan FILE`. @defaultValue false */
  plan?: boolean;
  maxFailureRate?: number;
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
   * settled `failed` (src/queue/failed-jobs.ts). @defaultValue 2
   */
  maxStalledCount?: number;
  /** Tests only: a shorter job lock than `lockDurationMs`, so a stall shows in a second. @defaultValue `lockDurationMs` */
  lockDurationMs?: number;
}

export interface WaitOptions {
  /** @defaultValue 500 */
  pollMs?: number;
  onProgress?: (run: RunRecord) => void;
  /** Abort when failed+rejected exceed this share of a target's outcomes after its first 100. */
  maxFailureRate?: number;
  signal?: AbortSignal;
}

/**
 * The sync engine: one `scan` queue and one `sync-<target>` queue per enabled target, their workers,
 * the per-target throttles, and the stores. Commands and the daemon use only this API:
 *
 * ```ts
 * const engine = await Engine.create({ config });
 * await engine.startWorkers();                       // omit for enqueue-only
 * const runId = await engine.startRun({ kind: 'backfill' });
 * const run = await engine.waitForRun(runId, { onProgress });
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
  private workers: Worker[] = [];
  private readonly throttles: SlidingWindowThrottle[] = [];
  private sourceConnector?: SourceConnector;
  private closed = false;
  /** Runs whose record vanished under `waitForRun` (issue 8.11): what jobs still wrote is removed on close. */
  private readonly vanished = new Set<string>();
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
    this.redisErrors = new RedisErrorLog(logger, config.redis.url);
    this.layout = new RedisLayout(config.redis.prefix);
    this.runs = new RunStore(connection, this.layout, {
      keep: config.sync.runsKeep,
      maxAgeMs: config.sync.runsMaxAgeMs,
    });
    this.state = new StateStore(connection, this.layout);
    this.targets = Object.keys(connectors) as TargetId[];
    if (this.targets.includes('prelude')) this.links = createLinkStore(connection, config.redis.prefix);
    this.settings = {
      attempts: { transient: config.sync.attempts, unknown: config.sync.attemptsUnknown },
      backoff: { baseMs: config.sync.backoffBaseMs, maxMs: config.sync.backoffMaxMs },
      unlinkedRecheckMs: config.sync.unlinkedRecheckMs,
      chunkSize: 500,
      pageSize: config.source.pageSize,
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
    const scope = newRequestScope();
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
      const fn: Throttle = async () => {
        const s = scope.getStore();
        const at = await th.acquire(s?.signal);
        if (s) s.sent++;
        return at;
      };
      // Issue 8.5: a 429 pauses the target for every process, capped by RATE_LIMIT_MAX_WAIT (issue 8.3).
      fn.pause = (ms) => th.pause(Math.min(ms, config.sync.rateLimitMaxWaitMs));
      fn.hold = () => th.hold(scope.getStore()?.signal);
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
    engine.requestScope = scope;
    engine.throttleFns = throttleFns;
    return engine;
  }

  private requestScope = newRequestScope();
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

  private context(): JobContext {
    return {
      logger: this.logger,
      runs: this.runs,
      state: this.state,
      links: this.links,
      source: () => this.source(),
      targets: this.connectors,
      syncQueues: this.syncQueues,
      settings: this.settings,
      requestScope: this.requestScope,
      lowerRateLimit: async (target) => this.throttleByTarget[target]?.lower(),
    };
  }

  /**
   * A job's lock must outlive its longest request, or a slow vendor gets a healthy job marked stalled
   * and run twice. One request can take connect + headers + body timeouts (5 + 15 + 15 s by default);
   * a job sends at most two plus short HTTP retries, and the lock is renewed every half lock, so twice
   * one request's worst case (70 s by default), at least 60 s, is ample.
   */
  get lockDurationMs(): number {
    const h = this.config.http;
    return Math.max(60_000, 2 * (h.connectTimeoutMs + h.headersTimeoutMs + h.bodyTimeoutMs));
  }

  /** Starts this process's workers: one per target queue (BullMQ limiter = the target's rate limit) and the scan worker. */
  async startWorkers(options: StartWorkersOptions = {}): Promise<void> {
    if (this.workers.length) return;
    const ctx = this.context();
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
    for (const t of this.targets) {
      // One queue per target carries writes and issue 5's removals alike: one rate limit for both.
      const processor = (job: Job) =>
        job.name === removeJob.name ? removeJob.handler(job, ctx) : syncJob.handler(job, ctx);
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
    if (options.scan !== false) {
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
      settleFailedJob(job, err, ctx).catch((e: unknown) =>
        this.logger.error(
          { err: e instanceof Error ? e.message : String(e), queue: w.name, job: job?.id },
          'could not settle a failed job',
        ),
      );
    });
    this.workers.push(w);
  }

  /** Records a run and enqueues its scan; returns the run id. Workers (here or in a daemon) do the rest. */
  async startRun(req: StartRunRequest): Promise<string> {
    const targets = req.targets ?? this.targets;
    const unknown = targets.filter((t) => !this.targets.includes(t));
    if (unknown.length)
      throw new ConfigError(
        `--targets: ${unknown.join(', ')} not enabled (set ${unknown.map((t) => `${t.toUpperCase()}_URL`).join(', ')})`,
      );
    if (targets.length === 0)
      throw new ConfigError('no target enabled: set SUNSHINE_URL, ZEPHR_URL or PRELUDE_URL');
    const options: RunOptions = {
      targets,
      dryRun: req.dryRun ?? false,
      full: req.full ?? false,
      showPii: req.showPii ?? this.config.sync.recordPii,
      plan: req.plan ?? false,
      deletions: deletionSettings(this.config),
    };
    if (req.users) options.users = req.users;
    if (req.limit !== undefined) options.limit = req.limit;
    if (req.maxFailureRate !== undefined) options.maxFailureRate = req.maxFailureRate;
    const runId = await this.runs.create(req.kind, options);
    await this.scanQueue.add(scanJob.name, { runId }, scanJob.options(runId, req.kind));
    this.logger.info(
      { runId, kind: req.kind, targets, dryRun: options.dryRun, full: options.full },
      'run started',
    );
    return runId;
  }

  /** Asks every worker to drop the run's remaining work; the run ends as `aborted`. */
  async abortRun(runId: string, reason: string): Promise<void> {
    await this.runs.requestAbort(runId, reason);
    this.logger.warn({ runId, reason }, 'run abort requested');
    await this.drainRun(runId);
  }

  /**
   * Removes an aborted run's jobs that have not started, settling each as `skipped`: otherwise each
   * would still wait for a slot of the target's rate budget just to find the run aborted. Jobs already
   * active (locked) are left to finish; they skip themselves at their start check.
   */
  async drainRun(runId: string): Promise<number> {
    const DRAIN_PAGE = 1000;
    const DRAIN_STATES = ['prioritized', 'waiting', 'delayed'] as const;
    let removed = 0;
    for (const t of this.targets) {
      const q = this.syncQueues[t]!;
      for (;;) {
        // Issue 8.8: every job of the run, however many other jobs sit before it (a page of 1,000
        // holding none of this run's jobs used to end the drain), collected before any is removed so
        // that removals do not shift the pages read.
        const jobs: Job[] = [];
        for (const state of DRAIN_STATES) {
          for (let start = 0; ; start += DRAIN_PAGE) {
            const page = await q.getJobs([state], start, start + DRAIN_PAGE - 1, true);
            for (const j of page) if (j?.data?.runId === runId) jobs.push(j);
            if (page.length < DRAIN_PAGE) break;
          }
        }
        let progress = 0;
        for (const job of jobs) {
          const gone = await job.remove().then(
            () => true,
            () => false,
          );
          if (!gone) continue;
          progress++;
          await this.runs.record(runId, {
            settle: syncJob.settleMember(t, job.data.userId),
            counters: [[t, 'skipped', 1]],
          });
        }
        removed += progress;
        if (progress === 0) break; // nothing left (or only jobs another process is removing)
      }
    }
    await maybeFinishRun(this.runs, runId);
    return removed;
  }

  /**
   * Resolves when the run is over: its scan ended and every sync job it enqueued completed or failed
   * for good. Polls the run record, so it works whichever process runs the jobs.
   */
  async waitForRun(runId: string, options: WaitOptions = {}): Promise<RunRecord> {
    const pollMs = options.pollMs ?? 500;
    let drained = false;
    for (;;) {
      options.signal?.throwIfAborted();
      await maybeFinishRun(this.runs, runId);
      const run = await this.runs.get(runId);
      if (!run) {
        // The record is gone (Redis emptied under the run). Waiting would be for ever; jobs still in
        // flight may write a partial record back, which close() removes once they have stopped.
        this.vanished.add(runId);
        this.logger.error({ runId }, 'run record vanished from Redis');
        throw new RunVanishedError(runId);
      }
      options.onProgress?.(run);
      if (run.status !== 'running') return run;
      const reason = await checkFailureRate(
        this.runs,
        runId,
        options.maxFailureRate ?? run.options.maxFailureRate,
      );
      if (reason) {
        this.logger.warn({ runId, reason }, 'run abort requested');
        await this.drainRun(runId);
      } else if (run.abortReason && !drained) {
        drained = true;
        await this.drainRun(runId);
      }
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }

  /**
   * Re-drives dead letters (failed sync jobs) as a new `retry` run, optionally only those of one run
   * and/or target. Each failed job is replaced by a job with the same payload in the new run; writes
   * are upserts keyed by the user's identifier, so a replay never creates a duplicate profile.
   *
   * Issue 8.8: every failed job is parsed and validated BEFORE the run is created and marked running;
   * a malformed one (a payload that does not parse, or a target that is not its queue's) is reported
   * in `malformed` and left in the failed set, never blocks the others, and never leaves a run
   * `running` for ever. `runId` names a run that neither exists nor has failed jobs: ConfigError
   * ("no such run").
   */
  async retryFailed(filter: { runId?: string; target?: TargetId } = {}): Promise<{
    runId: string | null;
    jobs: number;
    malformed: { target: TargetId; jobId: string; error: string }[];
  }> {
    const targets = filter.target ? [filter.target] : this.targets;
    const found: { target: TargetId; job: Job }[] = [];
    for (const t of targets) {
      const q = this.syncQueues[t];
      if (!q) throw new ConfigError(`--target: ${t} not enabled`);
      for (let start = 0; ; start += 500) {
        const jobs = await q.getFailed(start, start + 499);
        for (const job of jobs)
          if (job && (!filter.runId || job.data?.runId === filter.runId)) found.push({ target: t, job });
        if (jobs.length < 500) break;
      }
    }
    if (filter.runId && found.length === 0 && !(await this.runs.get(filter.runId)))
      throw new ConfigError(`--run: no such run ${filter.runId} (see profile-sync runs)`);

    // Parse and validate first: nothing is created for a job that cannot be replayed.
    const PLACEHOLDER = 'retry-pending';
    type Spec = { name: string; data: { runId: string; userId: string }; opts: Record<string, unknown> };
    const valid: { target: TargetId; job: Job; spec: Spec }[] = [];
    const malformed: { target: TargetId; jobId: string; error: string }[] = [];
    for (const { target: t, job } of found) {
      const schema = job.name === removeJob.name ? removeJob.payloadSchema : syncJob.payloadSchema;
      const parsed = schema.safeParse({ ...(job.data ?? {}), runId: PLACEHOLDER });
      const error = !parsed.success
        ? `payload invalid at ${parsed.error.issues.map((i) => i.path.join('.') || '(root)').join(', ')}`
        : parsed.data.target !== t
          ? `payload target is not ${t}`
          : null;
      if (error || !parsed.success) {
        malformed.push({ target: t, jobId: String(job.id), error: error ?? 'payload invalid' });
        this.logger.warn(
          { target: t, job: job.id, error },
          'retry-failed: malformed dead letter skipped (left in the failed set)',
        );
        continue;
      }
      valid.push({ target: t, job, spec: { name: job.name, data: parsed.data, opts: {} } });
    }
    if (valid.length === 0) return { runId: null, jobs: 0, malformed };

    const involved = [...new Set(valid.map((f) => f.target))];
    const runId = await this.runs.create('retry', {
      targets: involved,
      dryRun: false,
      full: false,
      showPii: this.config.sync.recordPii,
      plan: false,
      ...(filter.runId ? { retryOf: filter.runId } : {}),
    });
    try {
      await this.runs.updateScan(runId, { status: 'running', limited: true });
      for (const t of involved) {
        const mine = valid.filter((f) => f.target === t);
        const specs = mine.map(({ spec }) => {
          const data = { ...spec.data, runId };
          const remove = spec.name === removeJob.name;
          return {
            name: remove ? removeJob.name : syncJob.name,
            data,
            opts: remove
              ? {
                  ...removeJob.options('retry', this.settings),
                  jobId: removeJob.jobId(t, runId, data.userId),
                }
              : { ...syncJob.options('retry', this.settings), jobId: syncJob.jobId(t, runId, data.userId) },
          };
        });
        await this.runs.addPending(
          runId,
          specs.map((s) => syncJob.settleMember(t, s.data.userId)),
        );
        await this.syncQueues[t]!.addBulk(specs as Parameters<Queue['addBulk']>[0]);
        for (const { job } of mine) await job.remove().catch(() => undefined);
      }
      await this.runs.updateScan(runId, { status: 'done', records: valid.length });
    } catch (err) {
      // Never a run left `running` for ever: it ends failed, and says why.
      const message = err instanceof Error ? err.message : String(err);
      await this.runs.updateScan(runId, { status: 'failed', complete: false, error: message });
      await this.runs.finish(runId, 'failed', { error: message });
      throw err;
    }
    await maybeFinishRun(this.runs, runId);
    this.logger.info(
      { runId, jobs: valid.length, malformed: malformed.length, retryOf: filter.runId },
      'dead letters re-driven',
    );
    return { runId, jobs: valid.length, malformed };
  }

  /**
   * `backfill --confirm-deletes RUN`: re-drives the removals the safety brake held in that run (issue 5,
   * jobs/reconcile-deletions.ts), with the deletion policy in force now. Wait with `waitForRun`.
   */
  async confirmDeletes(runId: string): Promise<ConfirmResult> {
    return confirmHeldDeletions(this.context(), runId, deletionSettings(this.config));
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
