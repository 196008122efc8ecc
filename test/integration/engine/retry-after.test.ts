import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import * as runActions from '../../../jobs/run-actions.js';
import { exitCodeFor, runSummaryJson, runWarnings } from '../../../src/commands/print/run-report.js';
import { createTargetConnectors } from '../../../src/connectors/registry.js';
import type { Throttle } from '../../../src/connectors/types.js';
import { createLogger } from '../../../src/log.js';
import { type Harness, startHarness } from './harness.js';

/** A pino destination that keeps the parsed lines. */
function captureLogs(): { lines: Record<string, unknown>[]; stream: Writable } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) lines.push(JSON.parse(l));
      done();
    },
  });
  return { lines, stream };
}

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

// Issue 8.5: "Retry-After is not kept by every request": the second request of a two-request job and
// the jobs already running did not see the target's pause (3-5 requests per fault run left 585-796 ms
// before the wait ended). Now a 429 sets a shared "paused until" in Redis beside the throttle, and
// every request of every process waits for it in the same Lua call that grants it.
describe('engine: a 429 Retry-After is kept by every request (issue 8.5)', () => {
  it('several concurrent two-request Zephr jobs: no request reaches the simulator before the Retry-After of a 429 ended', async () => {
    // Two requests per job (GET + PUT) need ZEPHR_WRITE_MODE=merge: owned mode (the default) sends one.
    h = await startHarness({
      label: 'retry-after',
      sandbox: { users: 16 },
      env: { ZEPHR_WRITE_MODE: 'merge' },
    });
    // 120 a minute, burst 4: every 429 says `Retry-After: 1` (the next token is at most 500 ms away,
    // rounded up to whole seconds), so the vendor's window after a 429 at t is [t, t + 1000).
    const RETRY_AFTER_MS = 1000;
    h.sandbox.sims.zephr.setRateLimit({ perMinute: 120, burst: 4 });
    const since = Date.now();

    // The engine's own throttle, wrapped to learn when each 429 pause was set and when each request
    // was let go (its grant, the last look before it leaves; or `hold` after a wait > 10 s, which
    // a 1 s Retry-After never causes), both on the Redis clock (ms).
    let inner: Throttle | undefined;
    const pauses: { until: number; at: number }[] = [];
    const goes: number[] = [];
    const wrapped: Throttle = async (scope) => {
      const at = (await inner!(scope)) as number;
      goes.push(at);
      return at;
    };
    wrapped.pause = async (ms) => {
      const r = (await inner!.pause!(ms)) as { until: number; at: number };
      pauses.push(r);
      return r;
    };
    wrapped.hold = async (scope) => {
      const r = (await inner!.hold!(scope)) as { at: number };
      goes.push(r.at);
      return r;
    };
    const logger = createLogger({ level: 'silent' });
    const targets = createTargetConnectors(
      h.config,
      { logger },
      { only: ['zephr'], throttles: { zephr: wrapped } },
    );
    const engine = await h.engine({ only: ['zephr'], targets });
    inner = engine.throttleFor('zephr');
    await engine.startWorkers({ concurrency: 8 });
    try {
      const runId = await runActions.startRun(engine, { kind: 'backfill', targets: ['zephr'] });
      const run = await runActions.waitForRun(engine, runId, {
        pollMs: 100,
        signal: AbortSignal.timeout(120_000),
      });
      expect(run.status).toBe('completed');
      expect(run.targets.zephr!.outcomes.failed).toBe(0);
      expect(run.targets.zephr!.rateLimited).toBeGreaterThan(0);
    } finally {
      await Promise.all(Object.values(targets).map((c) => c.close()));
    }

    // From the simulator's own log (arrival times, epoch ms; Redis and the simulator share the host
    // clock, both in whole ms). After a 429 at t, the vendor's window is [t, t + Retry-After). The
    // client learns of it when the pause is set (S: the first pause set at or after t); from then on
    // no request may leave. A request arriving in the window after S must therefore have left before S:
    // there can be no more such arrivals than requests let go up to S and not arrived by S (in flight).
    // The only allowance is 1 ms of clock granularity.
    const log = h.sandbox.sims.zephr.requests(since);
    const limited = log.filter((r) => r.status === 429);
    expect(limited.length).toBeGreaterThan(0);
    const early: string[] = [];
    let inFlightMax = 0;
    for (const l of limited) {
      const pause = pauses.filter((p) => p.at >= l.t).sort((a, b) => a.at - b.at)[0];
      const set = pause?.at ?? l.t;
      if (pause && pause.until < l.t + RETRY_AFTER_MS)
        early.push(`paused only until +${pause.until - l.t} ms`);
      const inFlight = goes.filter((c) => c <= set).length - log.filter((r) => r.t <= set).length;
      inFlightMax = Math.max(inFlightMax, inFlight);
      const late = log.filter((r) => r.t > set + 1 && r.t < l.t + RETRY_AFTER_MS);
      if (late.length > Math.max(0, inFlight))
        early.push(
          `${late.length} requests arrived +${late.map((r) => r.t - l.t).join('/')} ms after a 429 (pause set at +${set - l.t} ms, ${inFlight} in flight)`,
        );
    }
    // The client side, exact (both Lua scripts run in one Redis, in order): no request was let go
    // while a pause was running. A grant in the same ms as the pause ran before it: a pause set at X
    // holds until X + wait > X, so ACQUIRE_LUA and HOLD_LUA refuse anything after it in that ms (a
    // `>=` here failed CI once on a grant "+0 ms into a pause" that Redis had run first).
    const inside: string[] = [];
    for (const p of pauses)
      for (const c of goes)
        if (c > p.at && c < p.until)
          inside.push(`let go at +${c - p.at} ms into a pause of ${p.until - p.at} ms`);
    expect({ early, inside }).toEqual({ early: [], inside: [] });
    console.info(
      `retry-after: ${log.length} requests, ${limited.length} answered 429, ${pauses.length} pauses set, at most ${inFlightMax} in flight at a pause`,
    );
  }, 180_000);
});

// Issue 8.3: `Retry-After: 86400` on one Prelude request paused the queue for 24 hours; backfill and
// sync-user hung. Now the pause is capped (RATE_LIMIT_MAX_WAIT, 15 min by default), and a target that
// asks for more is stopped for the run: its remaining jobs fail as rate_limited into the dead letters
// and the run ends (exit 1), `retry-failed` re-drives them later.
describe('engine: a huge Retry-After stops the target for the run (issue 8.3)', () => {
  it('Retry-After 86400 from Prelude: paused for RATE_LIMIT_MAX_WAIT only, the backfill ends with the target rate_limited, retry-failed re-drives', async () => {
    h = await startHarness({ label: 'retry-after-huge', sandbox: { users: 20 } });
    // One token a day, three at first: the fourth request is answered 429 with Retry-After ~86400.
    h.sandbox.sims.prelude.setRateLimit({ perMinute: 1 / 1440, burst: 3 });
    const since = Date.now();
    const { lines, stream } = captureLogs();
    const engine = await h.engine({
      only: ['prelude'],
      logger: createLogger({ level: 'warn', destination: stream }),
    });
    await engine.startWorkers({ concurrency: 4 });
    const started = Date.now();
    const runId = await runActions.startRun(engine, { kind: 'backfill', targets: ['prelude'] });
    // Before the fix this waited 24 hours (the signal fails the test after 60 s).
    const run = await runActions.waitForRun(engine, runId, {
      pollMs: 100,
      signal: AbortSignal.timeout(60_000),
    });

    const tookMs = Date.now() - started;
    const p = run.targets.prelude!;
    const log = h.sandbox.sims.prelude.requests(since);
    const first429 = log.find((r) => r.status === 429);
    expect(first429).toBeDefined();
    expect(p.stoppedBy).toBe('rate_limited');
    expect(p.stopped).toMatch(
      /^rate_limited: prelude asked to wait 2[34](\.\d)? h .*RATE_LIMIT_MAX_WAIT \(15 min\)/,
    );
    const written = p.outcomes.created + p.outcomes.updated + p.outcomes.unchanged;
    // The first token went to the scan's batch_lookup (one for the 20 users), the rest to PATCHes.
    expect(log[0]!.route).toContain('batch_lookup');
    expect(written).toBe(log.filter((r) => r.status < 300 && r.method === 'PATCH').length);
    expect(written + p.outcomes.failed + p.outcomes.rejected + p.outcomes.unlinked).toBe(20);
    expect(p.outcomes.failed).toBeGreaterThan(0);
    expect(exitCodeFor(run)).toBe(1);
    expect(runSummaryJson(run)).toMatchObject({ targets: { prelude: { stoppedBy: 'rate_limited' } } });
    expect(runWarnings(run).join('\n')).toMatch(/prelude was RATE_LIMITED .* retry-failed --run/);
    // No request after the 429s already in flight: the stopped target is left alone.
    expect(log.filter((r) => r.t > first429!.t + 0).every((r) => r.status === 429)).toBe(true);
    // The dead letters, each saying rate_limited. A batch's hand-over of a user that failed for good
    // may still wait for a worker a moment after the run ended (CI of stop 15: 14 of 15 in the failed
    // set); `retry-failed` below still re-drives exactly p.outcomes.failed (batch-dead-letter.test.ts).
    const failed = await engine.syncQueues.prelude!.getFailed(0, 100);
    expect(failed.length).toBeLessThanOrEqual(p.outcomes.failed);
    const items = (await engine.runs.items(runId)).filter((i) => i.outcome === 'failed');
    expect(items).toHaveLength(p.outcomes.failed);
    for (const i of items) expect(i.lastError?.class).toBe('rate_limited');
    // Paused (every process) for the capped wait only: 15 min, not 24 h.
    const pttl = await h.redis.pttl(`${engine.layout.throttle('prelude')}:pause`);
    expect(pttl).toBeGreaterThan(14 * 60_000);
    expect(pttl).toBeLessThanOrEqual(15 * 60_000 + 1000);
    // The log says so: a warn with the asked and capped waits.
    const warn = lines.find((l) => String(l.msg).includes('more than RATE_LIMIT_MAX_WAIT'));
    expect(warn).toMatchObject({ level: 40, target: 'prelude', waitMs: 15 * 60_000, maxWaitMs: 15 * 60_000 });
    expect(Number(warn!.retryAfterMs)).toBeGreaterThan(23 * 3600_000);

    console.info(
      `retry-after-huge: run ended in ${tookMs} ms, ${written} written, ${p.outcomes.failed} failed (rate_limited), ${log.length} requests (${log.filter((r) => r.status === 429).length} answered 429), pause ${pttl} ms left`,
    );
    // Later the vendor takes requests again (here: the pause is over, the limit lifted):
    // retry-failed re-drives exactly the dead letters and they succeed.
    h.sandbox.sims.prelude.setRateLimit(null);
    await h.redis.del(`${engine.layout.throttle('prelude')}:pause`);
    const retried = await runActions.retryFailed(engine, { runId });
    expect(retried.jobs).toBe(p.outcomes.failed);
    const again = await runActions.waitForRun(engine, retried.runId!, {
      pollMs: 100,
      signal: AbortSignal.timeout(60_000),
    });
    expect(again.targets.prelude!.outcomes.failed).toBe(0);
    expect(again.targets.prelude!.stopped).toBeUndefined();
  }, 150_000);
});
