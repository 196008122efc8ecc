import { readFileSync } from 'node:fs';
import type { Job, Queue, Worker } from 'bullmq';
import { JOBS } from '../../jobs/index.js';
import type { Config } from '../config/schema.js';
import type { TargetId } from '../core/targets.js';
import { type OpsServer, opsListen, startOpsServer } from '../http/server.js';
import { createLogger, type Logger } from '../log.js';
import { packageRoot } from '../paths.js';
import { Engine } from '../queue/engine.js';
import { Scheduler, validateSchedule } from './scheduler.js';

/**
 * How often each worker looks for stalled jobs. A SIGKILLed worker's jobs keep their locks until
 * `lockDuration` runs out (the engine's `lockDurationMs`: 70 s with the default HTTP timeouts, never
 * below 60 s, because a lock must outlive a job's slowest requests); the next stalled check after that
 * moves them back to the queue. BullMQ checks every 30 s by default, so recovery could take 100 s;
 * every 5 s it takes at most lockDuration + 5 s (75 s by default). A check is one small Lua script per
 * queue and process, negligible at that rate.
 */
export const DAEMON_STALLED_INTERVAL_MS = 5_000;

/** How long a shutdown that timed out may spend handing in-flight jobs back (Redis may be away). */
export const HAND_BACK_MAX_MS = 5_000;

export interface DaemonOptions {
  config: Config;
  /** @defaultValue a pino logger on stderr at `config.logLevel` */
  logger?: Logger;
  /** Run the schedule (`--no-schedule` turns it off: workers only). @defaultValue true */
  schedule?: boolean;
  /** Sync jobs per target in this process (`--concurrency`). @defaultValue `config.sync.concurrency` */
  concurrency?: number;
  /** Period of the status log line. @defaultValue 30000 */
  statusIntervalMs?: number;
  /** @defaultValue {@link DAEMON_STALLED_INTERVAL_MS} */
  stalledIntervalMs?: number;
  /** Serve the operations HTTP surface (docs/operations.md) unless `OPS_PORT=0`. @defaultValue true */
  ops?: boolean;
}

export interface StopResult {
  /** In-flight jobs finished within the timeout. */
  clean: boolean;
  /** Jobs handed back to their queue (moved to wait) because the timeout passed. */
  handedBack: number;
}

/**
 * `profile-sync daemon`: the engine's workers (every enabled target's sync queue and the scan queue),
 * the shared schedule, a periodic status line, and a shutdown that loses nothing. The operations HTTP
 * surface (src/http/server.ts, built separately) mounts on `Daemon.engine` once it exists.
 */
export class Daemon {
  private statusTimer?: NodeJS.Timeout;
  private stopping?: Promise<StopResult>;
  private expire?: () => void;

  private constructor(
    readonly engine: Engine,
    readonly scheduler: Scheduler | undefined,
    readonly logger: Logger,
    /** The operations HTTP surface, when served. */
    readonly ops: OpsServer | undefined,
  ) {}

  static async start(opts: DaemonOptions): Promise<Daemon> {
    const { config } = opts;
    const schedule = opts.schedule ?? true;
    if (schedule) validateSchedule(config.sync.schedule); // before any connection: exit 2 fast
    const logger = opts.logger ?? createLogger({ level: config.logLevel });
    const engine = await Engine.create({
      jobs: JOBS,
      config,
      logger,
      rateWindowMs: config.sync.rateWindowMs,
    });
    // Workers wait for Redis; say where, so a daemon stuck at start-up says why (host only: the URL
    // may carry a password).
    logger.info({ redis: redisHost(config.redis.url), prefix: config.redis.prefix }, 'starting workers');
    let scheduler: Scheduler | undefined;
    let ops: OpsServer | undefined;
    try {
      await engine.startWorkers({
        ...(opts.concurrency !== undefined ? { concurrency: opts.concurrency } : {}),
        stalledIntervalMs: opts.stalledIntervalMs ?? DAEMON_STALLED_INTERVAL_MS,
      });
      if (schedule) {
        scheduler = new Scheduler({ engine, logger });
        await scheduler.start();
      }
      const listen = opts.ops === false ? null : opsListen(config);
      if (listen)
        ops = await startOpsServer({
          engine,
          // The run pages' buttons (when not read-only) and POST /users/{id}/sync act through this
          // process's engine; the user page's "sync now" is the same requestUserSync.
          actionEngine: engine,
          userSync: engine,
          logger,
          version: packageVersion(),
          ...listen,
        });
    } catch (err) {
      await scheduler?.close(true).catch(() => undefined);
      await engine.close().catch(() => undefined);
      throw err;
    }
    const daemon = new Daemon(engine, scheduler, logger, ops);
    const concurrency = opts.concurrency ?? config.sync.concurrency;
    logger.info(
      {
        targets: engine.targets,
        concurrency,
        schedule: schedule ? config.sync.schedule : null,
        lockDurationMs: engine.lockDurationMs,
        stalledIntervalMs: opts.stalledIntervalMs ?? DAEMON_STALLED_INTERVAL_MS,
        shutdownTimeoutMs: config.sync.shutdownTimeoutMs,
        ops: ops?.url ?? null,
        ...(config.sync.rateWindowMs !== 60_000 ? { testRateWindowMs: config.sync.rateWindowMs } : {}),
      },
      'daemon started',
    );
    daemon.statusTimer = setInterval(() => {
      daemon.logStatus().catch((err) => logger.warn({ err: (err as Error).message }, 'status failed'));
    }, opts.statusIntervalMs ?? 30_000);
    daemon.statusTimer.unref();
    return daemon;
  }

  /** One log line: per-target queue depth and the running runs. Ids and counts only, never a secret. */
  async logStatus(): Promise<void> {
    const counts = await this.engine.queueCounts();
    const queues: Partial<Record<TargetId, string>> = {};
    for (const [t, c] of Object.entries(counts) as [TargetId, Record<string, number>][]) {
      const waiting = (c.waiting ?? 0) + (c.prioritized ?? 0);
      queues[t] =
        `waiting ${waiting}, active ${c.active ?? 0}, delayed ${c.delayed ?? 0}, failed ${c.failed ?? 0}`;
    }
    const running = (await this.engine.runs.list(20))
      .filter((r) => r.status === 'running')
      .map((r) => `${r.id} (${r.kind}, ${r.settled}/${r.enqueued} jobs, scan ${r.scan.status})`);
    const next = await this.scheduler?.nextTick();
    this.logger.info(
      { queues, running, ...(next ? { nextTick: new Date(next).toISOString() } : {}) },
      running.length ? `working: ${running.length} run(s) in progress` : 'idle',
    );
  }

  /**
   * Stops taking jobs and ticks, lets in-flight jobs finish for up to `timeoutMs`, then hands back
   * whatever is still running (moved to its queue's wait list, so another worker takes it at once
   * instead of after the lock expires), and closes. Jobs are idempotent per run and user (a replay
   * settles nothing twice and writes are upserts), so a handed-back job that had already written is
   * harmless.
   */
  stop(timeoutMs: number): Promise<StopResult> {
    if (this.stopping) {
      if (timeoutMs === 0) this.expire?.(); // a second signal: do not wait any longer
      return this.stopping;
    }
    this.stopping = this.doStop(timeoutMs);
    return this.stopping;
  }

  private async doStop(timeoutMs: number): Promise<StopResult> {
    const since = Date.now();
    clearInterval(this.statusTimer);
    const held: [Worker, Queue][] = [];
    const queues = [this.engine.scanQueue, ...Object.values(this.engine.syncQueues)];
    for (const w of this.engine.runningWorkers) {
      const q = queues.find((x) => x?.name === w.name);
      if (q) held.push([w, q]);
    }
    if (this.scheduler?.tickWorker) held.push([this.scheduler.tickWorker, this.scheduler.queue]);
    const workers = held.map(([w]) => w);
    // Stop fetching at once everywhere (close() would otherwise go worker by worker).
    for (const w of workers) void w.pause(true).catch(() => undefined);
    const closing = (async () => {
      await this.scheduler?.close();
      await this.engine.close();
    })();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      closing.then(() => false),
      new Promise<boolean>((resolve) => {
        this.expire = () => resolve(true);
        timer = setTimeout(() => resolve(true), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    // Readiness already answers 503 (workers paused); the surface goes last so probes see the stop.
    if (!timedOut) {
      await this.ops?.close();
      return { clean: true, handedBack: 0 };
    }
    // Issue 8.15: with Redis away the hand-back's commands wait for ever (the engine's connection
    // queues them until Redis answers): bounded, the daemon still exits, and stalled-job recovery
    // gives the jobs to another worker once their locks expire.
    let bound: NodeJS.Timeout | undefined;
    const handedBack = await Promise.race([
      handBack(held, this.engine, this.logger),
      new Promise<null>((resolve) => {
        bound = setTimeout(() => resolve(null), HAND_BACK_MAX_MS);
      }),
    ]).finally(() => clearTimeout(bound));
    if (handedBack === null) {
      this.logger.warn(
        { timeoutMs, waitedMs: Date.now() - since },
        'Redis did not answer: in-flight jobs not handed back; another worker takes them once their locks expire',
      );
      await this.ops?.close();
      return { clean: false, handedBack: 0 };
    }
    this.logger.warn(
      { handedBack, timeoutMs, waitedMs: Date.now() - since },
      'in-flight jobs handed back to their queues for another worker (shutdown timeout or second signal)',
    );
    await this.ops?.close();
    return { clean: false, handedBack };
  }
}

/**
 * Moves every job these workers hold back to its queue's wait list. A worker's lock token is
 * `<worker id>:<n>` (BullMQ 6), stored in the job's `:lock` key; `moveToWait(token)` checks it, so a
 * job that finished or changed hands in the meantime is left alone.
 */
async function handBack(held: [Worker, Queue][], engine: Engine, logger: Logger): Promise<number> {
  let moved = 0;
  for (const [w, queue] of held) {
    let active: Job[];
    try {
      active = await queue.getActive(0, 10_000);
    } catch {
      continue; // that queue already closed: nothing of it is in flight
    }
    for (const job of active) {
      if (!job?.id) continue;
      const token = await engine.connection.get(engine.layout.bullJobLock(w.name, job.id)).catch(() => null);
      if (!token?.startsWith(`${w.id}:`)) continue;
      try {
        await job.moveToWait(token);
        moved++;
      } catch (err) {
        logger.warn({ job: job.id, err: (err as Error).message }, 'could not hand a job back');
      }
    }
  }
  return moved;
}

function packageVersion(): string {
  return (JSON.parse(readFileSync(`${packageRoot()}/package.json`, 'utf8')) as { version: string }).version;
}

function redisHost(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return '(unparsable REDIS_URL)';
  }
}
