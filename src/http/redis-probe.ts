import type { Redis } from 'ioredis';
import type { Logger } from '../log.js';
import { duplicateForProbe } from '../store/connection.js';

export type ProbeResult = { ok: true; ms: number } | { ok: false; error: string };

/**
 * Answers "does Redis answer PING within `timeoutMs`?" on a connection of its own.
 *
 * Not on the engine's connection: that one has `maxRetriesPerRequest: null` (BullMQ requires it), so
 * while Redis is away a PING there is queued forever, and every probe of a 10-second readiness check
 * would add one more. This one has no offline queue: while disconnected a command fails at once, so a
 * probe answers in microseconds when Redis is down and nothing piles up. It reconnects on its own.
 */
export class RedisProbe {
  private readonly client: Redis;
  /** Settles when the connection in progress becomes ready; shared by concurrent probes. */
  private connecting?: Promise<void>;

  constructor(
    engineConnection: Redis,
    private readonly timeoutMs: number,
    logger?: Logger,
  ) {
    // A Cluster too (issue 9): its per-node options go elsewhere, see duplicateForProbe.
    this.client = duplicateForProbe(engineConnection, 'profile-sync-ops-probe');
    // Without a listener ioredis prints every failed reconnect to stderr; readiness reports it instead.
    this.client.on('error', (err: Error) => logger?.debug({ err: err.message }, 'ops redis probe'));
  }

  async ping(): Promise<ProbeResult> {
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.readyThenPing(),
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no PING answer within ${this.timeoutMs} ms`)),
            this.timeoutMs,
          );
        }),
      ]);
      return { ok: true, ms: Math.round((performance.now() - started) * 10) / 10 };
    } catch (err) {
      return { ok: false, error: (err as Error).message };
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * A fresh probe is still connecting, and without an offline queue a PING sent now would fail
   * although Redis is fine: wait for `ready` first (the caller's timeout bounds the wait). A
   * connection that lost Redis and is retrying (`reconnecting`) fails at once.
   */
  private async readyThenPing(): Promise<void> {
    const c = this.client;
    if (['wait', 'connecting', 'connect'].includes(c.status)) {
      this.connecting ??= new Promise<void>((resolve, reject) => {
        const done = (err?: Error) => {
          c.off('ready', onReady);
          c.off('close', onClose);
          this.connecting = undefined;
          if (err) reject(err);
          else resolve();
        };
        const onReady = () => done();
        const onClose = () => done(new Error('connection closed before it was ready'));
        c.on('ready', onReady);
        c.on('close', onClose);
        if (c.status === 'wait') c.connect().catch(() => undefined);
      });
      await this.connecting;
    } else if (c.status !== 'ready') {
      // ioredis would say "Stream isn't writeable and enableOfflineQueue options is false".
      throw new Error(`not connected (${c.status})`);
    }
    await c.ping();
  }

  close(): void {
    this.client.disconnect();
  }
}
