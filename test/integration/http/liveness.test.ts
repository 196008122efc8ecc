import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OpsServer } from '../../../src/http/server.js';
import { type OpsHarness, startOpsHarness } from './ops-harness.js';

describe('liveness', () => {
  let h: OpsHarness;
  let ops: OpsServer;

  beforeAll(async () => {
    h = await startOpsHarness({ label: 'live', users: 5 });
    ops = await h.server(await h.engine(), { maxEventLoopLagMs: 100, defaultMetrics: false });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('/healthz answers 503 "stalled" after the event loop was blocked longer than the limit', async () => {
    expect((await h.get(`${ops.url}/healthz`)).status).toBe(200);
    // Blocked for 1.2 s: the monitor's 500 ms tick falls due inside the block and fires at least
    // 700 ms late, far above the 100 ms limit whatever the machine's speed.
    const until = Date.now() + 1_200;
    while (Date.now() < until) {
      // busy: nothing else runs
    }
    await new Promise((r) => setImmediate(r)); // let the overdue tick run before we ask
    const r = await h.get(`${ops.url}/healthz`);
    expect(r.status).toBe(503);
    const body = JSON.parse(r.text);
    expect(body.status).toBe('stalled');
    expect(body.eventLoopLagMs).toBeGreaterThan(100);
  });
});
