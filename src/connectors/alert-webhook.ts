import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, type Dispatcher, request } from 'undici';
import type { Logger } from '../log.js';

/**
 * The operations webhook's transport (issue 12.3): one JSON POST per alert, retried with backoff.
 * It knows nothing of runs; src/queue/run-alerts.ts decides what to send and when.
 *
 * The URL is a secret (a Slack incoming-webhook URL carries its token in the path): it never reaches
 * a log line or an error message; only its host does.
 */

/**
 * Waits before tries 2..5: 1 s, 4 s, 15 s, 40 s: five tries over ~60 s. Long enough to outlast a
 * receiver's restart or a short 5xx spell, short enough that a one-off command's exit (which waits for
 * pending alerts, bounded by `RunAlerts.close`) is not held for minutes.
 */
export const ALERT_RETRY_DELAYS_MS: readonly number[] = [1_000, 4_000, 15_000, 40_000];

export interface AlertWebhookOptions {
  url: string;
  logger: Logger;
  /** @defaultValue {@link ALERT_RETRY_DELAYS_MS} (tests shorten them) */
  retryDelaysMs?: readonly number[];
  /** Per try: connect, headers and body each. @defaultValue 10000 */
  timeoutMs?: number;
  /** An undici dispatcher (tests); otherwise an Agent closed by `close()`. */
  dispatcher?: Dispatcher;
}

export interface AlertWebhook {
  /** The receiver's host (for logs). */
  readonly host: string;
  /** POSTs `body` until a 2xx, a 4xx other than 408/429 (the receiver refuses it: no retry), or the tries are used. */
  send(body: unknown, signal?: AbortSignal): Promise<{ delivered: boolean; tries: number; status?: number }>;
  close(): Promise<void>;
}

export function createAlertWebhook(opts: AlertWebhookOptions): AlertWebhook {
  const url = new URL(opts.url);
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const ownAgent = opts.dispatcher
    ? undefined
    : new Agent({ connect: { timeout: timeoutMs }, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  const dispatcher = opts.dispatcher ?? ownAgent!;
  const delays = opts.retryDelaysMs ?? ALERT_RETRY_DELAYS_MS;
  const log = opts.logger.child({ component: 'alerts', receiver: url.host });
  return {
    host: url.host,
    async send(body, signal) {
      const payload = JSON.stringify(body);
      let status: number | undefined;
      for (let attempt = 0; ; attempt++) {
        let retryable = true;
        let problem: string;
        try {
          const res = await request(url, {
            method: 'POST',
            dispatcher,
            headers: { 'content-type': 'application/json', 'user-agent': 'profile-sync-alerts' },
            body: payload,
            headersTimeout: timeoutMs,
            bodyTimeout: timeoutMs,
            ...(signal ? { signal } : {}),
          });
          status = res.statusCode;
          await res.body.dump().catch(() => undefined);
          if (status >= 200 && status < 300) return { delivered: true, tries: attempt + 1, status };
          retryable = status >= 500 || status === 408 || status === 429;
          problem = `HTTP ${status}`;
        } catch (err) {
          if (signal?.aborted) return { delivered: false, tries: attempt + 1 };
          // undici's error code (ECONNREFUSED, UND_ERR_HEADERS_TIMEOUT...), never its message: it may quote the URL.
          problem = String((err as { code?: unknown }).code ?? (err as Error).name ?? 'error');
        }
        const delay = delays[attempt];
        if (!retryable || delay === undefined) {
          log.error({ tries: attempt + 1, problem }, 'alert not delivered');
          return { delivered: false, tries: attempt + 1, ...(status !== undefined ? { status } : {}) };
        }
        log.warn({ try: attempt + 1, problem, retryInMs: delay }, 'alert delivery failed, retrying');
        try {
          await sleep(delay, undefined, signal ? { signal } : {});
        } catch {
          return { delivered: false, tries: attempt + 1 };
        }
      }
    },
    async close() {
      await ownAgent?.close();
    },
  };
}
