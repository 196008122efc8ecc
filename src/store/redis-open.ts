import type { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import { ConfigError } from '../core/config-error.js';
import type { Logger } from '../log.js';
import { createRedisConnection, type RedisConnectionOptions } from './connection.js';

/**
 * Issue 8.4: opening Redis, failing fast on refused credentials, and logging Redis errors without a
 * secret.
 *
 * An ioredis error can carry the command that failed: with a wrong password that is
 * `HELLO 3 AUTH default <password>` (or `AUTH <password>`), and BullMQ prints such an error with
 * `console.error` when a Queue has no `'error'` listener, on every reconnect, for ever. So every
 * Queue, Worker and connection gets a listener ({@link watchRedisErrors}) that logs only the message
 * (the password scrubbed from it too), through pino, and the same message at most once per
 * {@link REPEAT_LOG_MS}. An authentication error at start-up ends the command with exit 2
 * ({@link RedisAuthError}) instead of reconnecting for ever.
 */

/** Repeats of one Redis error message are logged at most this often (with how many were skipped). */
export const REPEAT_LOG_MS = 30_000;

/** Exit 2 (a ConfigError): Redis answered but refused the user name/password of `REDIS_URL`. */
export class RedisAuthError extends ConfigError {
  constructor(url: string) {
    super(
      `Redis refused the credentials: REDIS_URL (${redisHostOf(url)}) has a wrong or missing user name or password (the Redis server answered WRONGPASS/NOAUTH); fix REDIS_URL`,
    );
  }
}

/** WRONGPASS / NOAUTH / "ERR invalid password" (also behind a Cluster's `lastNodeError`). */
export function isRedisAuthError(err: unknown): boolean {
  if (!err || typeof err !== 'object') return false;
  const msg = String((err as { message?: unknown }).message ?? '');
  if (/^(WRONGPASS|NOAUTH)\b|invalid password|invalid username-password|Authentication required/i.test(msg))
    return true;
  return isRedisAuthError((err as { lastNodeError?: unknown }).lastNodeError);
}

/** `host:port` of a Redis URL, never its user or password. */
export function redisHostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return 'unparsable URL';
  }
}

/** The secrets of a Redis URL (password, and user name when it has one), to scrub from messages. */
function secretsOf(url: string): string[] {
  try {
    const u = new URL(url);
    return [u.password, decodeURIComponent(u.password)].filter((s) => s.length >= 3);
  } catch {
    return [];
  }
}

/**
 * The one thing of a Redis error that may be logged: its message (the password scrubbed in case it
 * appears) and code. Never the error object: ioredis attaches the failed command and its arguments.
 */
export function redisErrorFields(err: unknown, url?: string): { err: string; code?: string } {
  let msg = err instanceof Error ? err.message : String(err);
  for (const s of url ? secretsOf(url) : []) msg = msg.split(s).join('[redacted]');
  const code = (err as { code?: unknown } | null)?.code;
  return { err: msg, ...(typeof code === 'string' ? { code } : {}) };
}

/**
 * Logs the Redis errors of many emitters (the shared connection, each Queue and Worker re-emit the
 * same error) through one logger: message only, each distinct message at most once per
 * {@link REPEAT_LOG_MS} with a count of the repeats in between.
 */
export class RedisErrorLog {
  private readonly last = new Map<string, { at: number; skipped: number }>();

  constructor(
    private readonly logger: Logger,
    private readonly url?: string,
    private readonly repeatMs = REPEAT_LOG_MS,
  ) {}

  /** Adds an `'error'` listener to `emitter` (a Queue, Worker, QueueEvents or ioredis client). */
  watch(emitter: EventEmitter, what: string): void {
    emitter.on('error', (err: unknown) => this.log(err, what));
  }

  log(err: unknown, what: string): void {
    const fields = redisErrorFields(err, this.url);
    const now = Date.now();
    const seen = this.last.get(fields.err);
    if (seen && now - seen.at < this.repeatMs) {
      seen.skipped++;
      return;
    }
    this.last.set(fields.err, { at: now, skipped: 0 });
    const auth = isRedisAuthError(err);
    this.logger[auth ? 'error' : 'warn'](
      { ...fields, on: what, ...(seen?.skipped ? { repeated: seen.skipped } : {}) },
      auth ? 'Redis refused the credentials' : `error on ${what}`,
    );
  }
}

/** Adds a redacting `'error'` listener to each emitter (shortcut for one {@link RedisErrorLog}). */
export function watchRedisErrors(
  logger: Logger,
  url: string | undefined,
  ...emitters: [EventEmitter, string][]
): RedisErrorLog {
  const log = new RedisErrorLog(logger, url);
  for (const [e, what] of emitters) log.watch(e, what);
  return log;
}

/**
 * Resolves once `client` is ready. Rejects with {@link RedisAuthError} (exit 2) the first time Redis
 * refuses the credentials, after disconnecting the client so that it stops retrying. Any other error
 * (Redis not there yet) keeps waiting: ioredis reconnects, and the caller's listener logs it.
 */
export function whenRedisReady(client: Redis, url: string): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const done = (err?: Error) => {
      client.off('ready', onReady);
      client.off('error', onError);
      client.off('end', onEnd);
      if (err) reject(err);
      else resolve();
    };
    const onReady = () => done();
    const onError = (err: unknown) => {
      if (!isRedisAuthError(err)) return;
      client.disconnect();
      done(new RedisAuthError(url));
    };
    const onEnd = () =>
      done(new Error(`the Redis connection to ${redisHostOf(url)} ended before it was ready`));
    client.on('ready', onReady);
    client.on('error', onError);
    client.on('end', onEnd);
    if (client.status === 'wait') client.connect().catch(() => undefined);
  });
}

/**
 * Opens the configured Redis for a command: a connection (see `createRedisConnection`) whose errors are
 * logged without secrets, ready to use; exit 2 with "Redis refused the credentials" when they are
 * wrong. The caller closes it.
 */
export async function openRedis(
  opts: RedisConnectionOptions,
  logger: Logger,
): Promise<{ redis: Redis; errors: RedisErrorLog }> {
  const redis = createRedisConnection(opts);
  const errors = new RedisErrorLog(logger, opts.url);
  errors.watch(redis as unknown as EventEmitter, 'connection');
  await whenRedisReady(redis, opts.url);
  return { redis, errors };
}
