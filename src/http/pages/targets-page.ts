import { targetRateLimit } from '../../config/schema.js';
import { TARGET_IDS, type TargetId } from '../../core/targets.js';
import { throttleStatus } from '../../queue/throttle.js';
import { syncQueueName } from '../../store/redis-layout.js';
import type { OpsEngine } from '../ops-engine.js';
import { bullQueueUrl, type Html, html, iso, type PageResult, page, runUrl } from './layout.js';

/** Runs read (newest first) to find the newest run of each target, as /readyz does. */
const RUNS_CONSULTED = 20;

interface Stop {
  runId: string;
  reason: string;
  by: 'auth' | 'rate_limited';
}

/**
 * `GET /targets`: per target, whether it is enabled, its configured rate limit and the effective one
 * (lower for a while after a 429 cut it: src/queue/throttle.ts), the requests granted in the last
 * window, a 429's "paused until", whether the newest run that included it stopped it (auth, or a
 * Retry-After beyond RATE_LIMIT_MAX_WAIT; /readyz and /metrics report the same), and its queue's jobs.
 */
export async function targetsPage(engine: OpsEngine): Promise<PageResult> {
  const windowMs = engine.config.sync.rateWindowMs;
  const stops = await newestStops(engine);
  const rows = await Promise.all(
    TARGET_IDS.map(async (t) => {
      if (!engine.targets.includes(t))
        return html`<tr data-target="${t}"><th>${t}</th><td class="enabled">no</td><td colspan="7">not configured (set ${t.toUpperCase()}_URL)</td></tr>`;
      return enabledRow(engine, t, windowMs, stops.get(t));
    }),
  );
  const body = html`<h1>Targets</h1>
<table id="targets-status">
<thead><tr><th>target</th><th>enabled</th><th class="num">limit / window</th><th class="num">effective limit</th><th class="num">requests in the last window</th><th>paused until (UTC)</th><th>stopped</th><th>queue</th><th class="num">waiting / active / failed</th></tr></thead>
<tbody>${rows}</tbody>
</table>
<p>Window: ${windowMs / 1000} s. The effective limit is lower than the configured one for a while after a 429 (adaptive limit); "paused until" is a 429's Retry-After, shared by every process.</p>`;
  return page({ title: 'Targets', body });
}

async function enabledRow(
  engine: OpsEngine,
  t: TargetId,
  windowMs: number,
  stop: Stop | undefined,
): Promise<Html> {
  const limit = targetRateLimit(engine.config, t);
  const s = await throttleStatus(
    engine.connection,
    {
      key: engine.layout.throttle(t),
      adaptKey: engine.layout.throttleAdapt(t),
      pauseKey: engine.layout.throttlePause(t),
    },
    limit,
    windowMs,
  );
  const q = engine.syncQueues[t];
  const counts = q ? await q.getJobCounts('waiting', 'prioritized', 'active', 'failed') : undefined;
  const cut = s.effectiveLimit < limit;
  return html`<tr data-target="${t}">
<th>${t}</th>
<td class="enabled">yes</td>
<td class="num limit">${limit}</td>
<td class="num effective-limit${cut ? ' status-held' : ''}">${s.effectiveLimit}${cut ? ' (cut after a 429)' : ''}</td>
<td class="num recent-requests">${s.recentRequests}</td>
<td class="paused-until">${s.pausedUntil ? `${iso(s.pausedUntil)} (${Math.ceil((s.pausedUntil - s.at) / 1000)} s)` : '-'}</td>
<td class="stopped">${stop ? html`<span class="status-failed">${stop.by === 'rate_limited' ? 'RATE_LIMITED' : 'STOPPED (auth)'}</span> in run <a href="${runUrl(stop.runId)}">${stop.runId}</a>: ${stop.reason}` : 'no'}</td>
<td><a class="bull-link" href="${bullQueueUrl(syncQueueName(t))}">${syncQueueName(t)}</a></td>
<td class="num">${counts ? `${(counts.waiting ?? 0) + (counts.prioritized ?? 0)} / ${counts.active ?? 0} / ${counts.failed ?? 0}` : '-'}</td>
</tr>`;
}

/** Per target, the stop recorded in the newest run that included it (none when that run did not stop it). */
async function newestStops(engine: OpsEngine): Promise<Map<TargetId, Stop>> {
  const out = new Map<TargetId, Stop>();
  const decided = new Set<string>();
  for (const run of await engine.runs.list(RUNS_CONSULTED)) {
    for (const [t, c] of Object.entries(run.targets) as [
      TargetId,
      NonNullable<(typeof run.targets)[TargetId]>,
    ][]) {
      if (decided.has(t)) continue;
      decided.add(t);
      if (c.stopped) out.set(t, { runId: run.id, reason: c.stopped, by: c.stoppedBy ?? 'auth' });
    }
  }
  return out;
}
