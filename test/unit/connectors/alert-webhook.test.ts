import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createAlertWebhook } from '../../../src/connectors/alert-webhook.js';
import { createLogger } from '../../../src/log.js';
import { type AlertReceiver, startAlertReceiver } from '../../helpers/alert-receiver.js';

const logger = createLogger({ level: 'silent' });
const FAST = [10, 10, 10, 10];

describe('alert webhook sender (issue 12.3)', () => {
  let rx: AlertReceiver | undefined;
  afterEach(async () => {
    await rx?.close();
    rx = undefined;
  });

  it('a receiver answering 500 twice then 200 gets the alert on the third try, the same JSON each time', async () => {
    rx = await startAlertReceiver({ statuses: [500, 500] });
    const hook = createAlertWebhook({ url: rx.url, logger, retryDelaysMs: FAST });
    const r = await hook.send({ text: 'hello', event: 'run_failed' });
    await hook.close();
    expect(r).toEqual({ delivered: true, tries: 3, status: 200 });
    expect(rx.requests.map((q) => q.status)).toEqual([500, 500, 200]);
    expect(new Set(rx.requests.map((q) => q.text)).size).toBe(1);
    expect(rx.requests[0]!.contentType).toBe('application/json');
    expect(rx.delivered()).toEqual([{ text: 'hello', event: 'run_failed' }]);
  });

  it('a 4xx refusal is not retried; 429 and 408 are', async () => {
    rx = await startAlertReceiver({ statuses: [400] });
    const hook = createAlertWebhook({ url: rx.url, logger, retryDelaysMs: FAST });
    expect(await hook.send({ text: 'x' })).toEqual({ delivered: false, tries: 1, status: 400 });
    await rx.close();
    rx = await startAlertReceiver({ statuses: [429, 408] });
    const again = createAlertWebhook({ url: rx.url, logger, retryDelaysMs: FAST });
    expect(await again.send({ text: 'x' })).toMatchObject({ delivered: true, tries: 3 });
    await hook.close();
    await again.close();
  });

  it('a dead receiver (connection refused) is given up after the last retry, without throwing', async () => {
    const port = await closedPort();
    const hook = createAlertWebhook({ url: `http://127.0.0.1:${port}/hook`, logger, retryDelaysMs: FAST });
    expect(await hook.send({ text: 'x' })).toEqual({ delivered: false, tries: 5 });
    await hook.close();
  });

  it('an abort ends the wait of a hanging receiver at once', async () => {
    rx = await startAlertReceiver({ hang: true });
    const hook = createAlertWebhook({ url: rx.url, logger, retryDelaysMs: FAST });
    const controller = new AbortController();
    const sending = hook.send({ text: 'x' }, controller.signal);
    while (rx.requests.length === 0) await new Promise((r) => setTimeout(r, 10));
    controller.abort();
    expect(await sending).toEqual({ delivered: false, tries: 1 });
    await hook.close();
  });
});

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as { port: number };
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
