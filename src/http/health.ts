import type { RunRecord } from '../store/run-record.js';
import type { EventLoopMonitor } from './event-loop.js';
import type { OpsEngine } from './ops-engine.js';
import type { RedisProbe } from './redis-probe.js';

export interface HealthOptions {
  engine: OpsEngine;
  probe: RedisProbe;
  loop: EventLoopMonitor;
  version: string;
  /** Liveness fails when the event loop was blocked longer than this in the last 10 s. @defaultValue 5000 */
  maxEventLoopLagMs?: number;
  /**
   * Readiness needs running workers. Off for a process that only serves the dashboard.
   * @defaultValue true
   */
  requireWorkers?: boolean;
  /**
   * Runs that started before this time are not consulted for stopped targets: a process restarted
   * with fixed credentials is ready at once, not after the next run. @defaultValue the server's start
   */
  since: number;
  /** Run records read for stopped targets (newest first). @defaultValue 20 */
  runsConsulted?: number;
}

export interface HealthAnswer {
  status: 200 | 503;
  body: Record<string, unknown>;
}

/**
 * Liveness: the process is up and its event loop is not stuck. Deliberately independent of Redis: a
 * Redis outage must make every pod not-ready, not make the kubelet restart every pod in a loop (which
 * would also throw away in-flight jobs the moment Redis comes back).
 */
export function liveness(opts: HealthOptions): HealthAnswer {
  const lag = opts.loop.maxLagMs();
  const limit = opts.maxEventLoopLagMs ?? 5_000;
  const body = {
    status: lag > limit ? 'stalled' : 'ok',
    version: opts.version,
    uptimeSeconds: Math.round(process.uptime()),
    eventLoopLagMs: lag,
  };
  return { status: lag > limit ? 503 : 200, body };
}

/**
 * Readiness: Redis answers PING in time, this process's workers run, and no target was stopped for an
 * authentication failure in the newest run that included it. Every failed check adds a reason.
 */
export async function readiness(opts: HealthOptions): Promise<HealthAnswer> {
  const reasons: string[] = [];
  const redis = await opts.probe.ping();
  if (!redis.ok) reasons.push(`redis: ${redis.error}`);

  let workers: Record<string, boolean> | undefined;
  if (opts.requireWorkers !== false) {
    workers = workerCheck(opts.engine);
    const down = Object.entries(workers).filter(([, running]) => !running);
    if (Object.keys(workers).length === 0) reasons.push('workers: none started in this process');
    for (const [queue] of down) reasons.push(`workers: no running worker for queue ${queue}`);
  }

  let stopped: Record<string, { runId: string; reason: string }> = {};
  if (redis.ok) {
    try {
      stopped = await stoppedTargets(opts);
    } catch (err) {
      reasons.push(`runs: cannot read run records: ${(err as Error).message}`);
    }
  }
  for (const [t, s] of Object.entries(stopped))
    reasons.push(`target ${t} stopped for an authentication failure in run ${s.runId}: ${s.reason}`);

  const body: Record<string, unknown> = {
    status: reasons.length ? 'unavailable' : 'ok',
    version: opts.version,
    checks: {
      redis,
      ...(workers ? { workers } : {}),
      stoppedTargets: stopped,
    },
  };
  if (reasons.length) body.reasons = reasons;
  return { status: reasons.length ? 503 : 200, body };
}

/** This process's workers by queue: running and not paused (a daemon pauses them as it shuts down). */
function workerCheck(engine: OpsEngine): Record<string, boolean> {
  const out: Record<string, boolean> = {};
  for (const w of engine.runningWorkers)
    out[w.name] = (out[w.name] ?? true) && w.isRunning() && !w.isPaused();
  return out;
}

/** The targets whose newest run (started since `opts.since`) stopped them for an auth failure. */
async function stoppedTargets(
  opts: HealthOptions,
): Promise<Record<string, { runId: string; reason: string }>> {
  const runs: RunRecord[] = await opts.engine.runs.list(opts.runsConsulted ?? 20);
  const out: Record<string, { runId: string; reason: string }> = {};
  const decided = new Set<string>();
  for (const run of runs) {
    if (run.startedAt < opts.since) break; // newest first: everything after is older
    for (const [t, counts] of Object.entries(run.targets)) {
      if (decided.has(t)) continue;
      decided.add(t);
      if (counts?.stopped) out[t] = { runId: run.id, reason: counts.stopped };
    }
  }
  return out;
}
