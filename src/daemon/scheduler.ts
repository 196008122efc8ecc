import { setTimeout as sleep } from 'node:timers/promises';
import { type Job, Queue, Worker } from 'bullmq';
import { validateDetailed } from 'node-cron';
/**
 * The daemon's schedule: one BullMQ job scheduler, shared by every daemon, whose ticks start scheduled
 * runs.
 *
 * Why a BullMQ job scheduler and not node-cron's `distributed: true`: node-cron elects one instance per
 * fire through a lease (a coordinator's `shouldRun(key, ttl)`), then runs the task in that process;
 * nothing is persisted, so a daemon that wins the election and dies before enqueueing the scan loses
 * that tick, and a tick that falls while every daemon is down (a deploy) is lost too. node-cron's own
 * README says so ("exactly-once guarantees across crashes: ... a queue or workflow engine is a better
 * fit"). A job scheduler keeps the schedule in Redis and turns each tick into one job with the
 * deterministic id `repeat:<scheduler>:<tick millis>`: however many daemons upsert the scheduler, a
 * tick is one job, taken by one worker under a lock, and recovered by another daemon if that worker
 * is killed (stalled-job recovery), exactly like the sync jobs. A tick missed while no daemon runs
 * fires once when one comes back. node-cron is still used to validate `SYNC_SCHEDULE` at start-up,
 * for its field-level messages.
 *
 * A tick job only decides and records: it starts a `scheduled` run (whose scan runs in the `scan`
 * queue like any other), or, when the previous scheduled run is still running, records a run with
 * status `skipped` so `profile-sync runs` shows it.
 */
import * as runActions from '../../jobs/run-actions.js';
import { ConfigError } from '../core/config-error.js';
import type { Logger } from '../log.js';
import type { Engine } from '../queue/engine.js';

/** The queue of tick jobs (BullMQ queue names may not contain `:`). */
export const SCHEDULE_QUEUE = 'schedule';
/** The job scheduler's id: one per prefix, whichever daemon upserted it last sets the pattern. */
export const SCHEDULER_ID = 'reconcile';
const TICK_JOB = 'tick';

/**
 * Checks a cron expression the way the daemon will use it: 5 fields (minute first) or 6 (seconds
 * first). Throws a ConfigError naming `SYNC_SCHEDULE` (exit 2).
 */
export function validateSchedule(expression: string): void {
  const trimmed = expression.trim();
  const fields = trimmed.split(/\s+/).length;
  const detail = trimmed === '' ? null : validateDetailed(trimmed);
  if (!detail?.valid || (fields !== 5 && fields !== 6)) {
    const why = detail?.errors.map((e) => e.message).join('; ') || 'expected 5 or 6 fields';
    throw new ConfigError(
      `SYNC_SCHEDULE: '${expression}' is not a valid cron expression (${why}); use 5 fields, ` +
        `e.g. '*/15 * * * *' (every 15 minutes), or 6 with seconds first`,
    );
  }
}

export interface SchedulerOptions {
  engine: Engine;
  /** Cron expression, UTC. @defaultValue `config.sync.schedule` ('*\/15 * * * *') */
  pattern?: string;
  logger?: Logger;
}

/** What one tick did. */
export type TickOutcome =
  | { action: 'started'; runId: string; tick: number }
  | { action: 'skipped'; runId: string; tick: number; previous: string }
  | { action: 'duplicate'; tick: number };

export class Scheduler {
  readonly queue: Queue;
  readonly pattern: string;
  private worker?: Worker;
  private readonly logger: Logger;
  private readonly engine: Engine;
  /** Listeners for each tick's outcome (daemon logs and tests). */
  readonly onTick: ((t: TickOutcome) => void)[] = [];

  constructor(opts: SchedulerOptions) {
    this.engine = opts.engine;
    this.pattern = (opts.pattern ?? opts.engine.config.sync.schedule).trim();
    validateSchedule(this.pattern);
    this.logger = (opts.logger ?? opts.engine.logger).child({ component: 'scheduler' });
    this.queue = new Queue(SCHEDULE_QUEUE, {
      connection: opts.engine.connection,
      prefix: opts.engine.layout.bullPrefix,
    });
    // Issue 8.4: without a listener BullMQ prints a Queue's errors (with the failed command's arguments).
    opts.engine.watchRedisErrors(this.queue, `queue ${SCHEDULE_QUEUE}`);
  }

  /** Upserts the shared job scheduler (idempotent across daemons) and starts taking ticks. */
  async start(): Promise<void> {
    const existing = await this.queue.getJobScheduler(SCHEDULER_ID);
    if (existing?.pattern && existing.pattern !== this.pattern) {
      this.logger.warn(
        { was: existing.pattern, now: this.pattern },
        'SYNC_SCHEDULE differs from the schedule in Redis: this daemon replaces it for every daemon',
      );
    }
    try {
      // UTC so that daemons on hosts in different time zones agree on every tick.
      await this.queue.upsertJobScheduler(
        SCHEDULER_ID,
        { pattern: this.pattern, tz: 'UTC' },
        {
          name: TICK_JOB,
          data: {},
          opts: { removeOnComplete: { count: 500 }, removeOnFail: { count: 500 }, attempts: 3 },
        },
      );
    } catch (err) {
      throw new ConfigError(`SYNC_SCHEDULE: '${this.pattern}' refused: ${(err as Error).message}`);
    }
    this.worker = new Worker(SCHEDULE_QUEUE, (job: Job) => this.tick(job), {
      connection: this.engine.connection,
      prefix: this.engine.layout.bullPrefix,
      concurrency: 1,
      stalledInterval: 5_000,
    });
    this.engine.watchRedisErrors(this.worker, `worker ${SCHEDULE_QUEUE}`);
    await this.worker.waitUntilReady();
    const next = await this.nextTick();
    this.logger.info(
      { schedule: this.pattern, next: next ? new Date(next).toISOString() : null },
      'schedule active',
    );
  }

  /** The time of the next tick (ms), or null. */
  async nextTick(): Promise<number | null> {
    const s = await this.queue.getJobScheduler(SCHEDULER_ID);
    return s?.next ?? null;
  }

  /** The worker taking ticks (for the daemon's hand-back on a shutdown timeout). */
  get tickWorker(): Worker | undefined {
    return this.worker;
  }

  /**
   * One tick: at most one record per tick whatever BullMQ delivers (a duplicate tick job, as upsert
   * races in older BullMQ produced, bullmq#2988, finds the tick already claimed), and one scheduled run
   * at a time (the previous one still running -> a `skipped` record).
   */
  async tick(job: Job): Promise<TickOutcome> {
    const tick = tickMillis(job);
    const claimed = await this.engine.connection.set(
      this.engine.layout.scheduleTick(tick),
      String(job.id),
      'PX',
      3_600_000, // duplicates of a tick arrive within seconds; an hour is ample and keeps the keys few
      'NX',
    );
    if (claimed === null) {
      const out: TickOutcome = { action: 'duplicate', tick };
      this.logger.debug({ tick: new Date(tick).toISOString() }, 'tick already handled');
      return out;
    }
    // Two ticks can be handled at once only when one was late (a slow Redis, a recovered stall); the
    // lock keeps "check the previous run, then start one" atomic between daemons.
    const lock = this.engine.layout.scheduleLock();
    const token = `${job.id}`;
    const deadline = Date.now() + 30_000;
    while ((await this.engine.connection.set(lock, token, 'PX', 30_000, 'NX')) === null) {
      if (Date.now() > deadline) throw new Error('schedule lock held for 30 s');
      await sleep(50);
    }
    try {
      const out = await this.decide(tick);
      for (const l of this.onTick) l(out);
      return out;
    } finally {
      if ((await this.engine.connection.get(lock)) === token) await this.engine.connection.del(lock);
    }
  }

  private async decide(tick: number): Promise<TickOutcome> {
    const { connection, runs, layout } = this.engine;
    const currentKey = this.engine.layout.scheduleCurrent();
    const previous = await connection.get(currentKey);
    const prev = previous ? await runs.completion(previous) : null;
    const at = new Date(tick).toISOString();
    if (previous && prev?.status === 'running') {
      const runId = await runs.create('scheduled', {
        targets: this.engine.targets,
        dryRun: false,
        full: false,
        showPii: this.engine.config.sync.recordPii,
        plan: false,
      });
      await connection.hset(layout.run(runId), 'tick', String(tick));
      await runs.finish(runId, 'skipped', {
        error: `tick ${at} skipped: the previous scheduled run ${previous} is still running`,
      });
      const run = await runs.get(previous);
      // A run that never ends (its jobs removed by hand, say) would skip every tick: the duration in
      // the warning and in `profile-sync runs` is what tells the operator.
      this.logger.warn(
        { runId, tick: at, previous, previousRunningForMs: run ? Date.now() - run.startedAt : undefined },
        'scheduled run skipped: the previous one is still running',
      );
      return { action: 'skipped', runId, tick, previous };
    }
    const runId = await runActions.startRun(this.engine, { kind: 'scheduled' });
    await connection.multi().set(currentKey, runId).hset(layout.run(runId), 'tick', String(tick)).exec();
    this.logger.info({ runId, tick: at }, 'scheduled run started');
    return { action: 'started', runId, tick };
  }

  /** Stops taking ticks (an in-flight tick finishes); the job scheduler stays for the other daemons. */
  async close(force = false): Promise<void> {
    await this.worker?.close(force);
    await this.queue.close();
  }
}

/** The tick a scheduler job stands for: its id is `repeat:<scheduler>:<millis>` (BullMQ 6). */
export function tickMillis(job: Pick<Job, 'id' | 'opts' | 'timestamp'>): number {
  const fromId = Number(String(job.id).split(':').at(-1));
  if (Number.isFinite(fromId) && fromId > 0) return fromId;
  return (job.opts as { prevMillis?: number }).prevMillis ?? job.timestamp;
}
