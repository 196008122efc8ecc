// BENCH_GC=1: V8's garbage collections in this process over a span (perf_hooks 'gc' entries), by kind.
// Their durations are wall time on the main thread (a pause stretched by preemption counts whole); the
// parallel scavenge's helper threads are not in them (bench/plain-vs-engine.bench.mjs BENCH_THREADS).
import { constants, PerformanceObserver } from 'node:perf_hooks';

const KINDS = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'scavenge',
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'mark-compact',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weak callbacks',
};

/** Starts counting; `stop()` answers e.g. "scavenge 42 (198 ms), mark-compact 1 (20 ms)". */
export function watchGc() {
  const byKind = new Map();
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = KINDS[e.detail?.kind ?? e.kind] ?? `kind ${e.detail?.kind ?? e.kind}`;
      const [n, ms] = byKind.get(kind) ?? [0, 0];
      byKind.set(kind, [n + 1, ms + e.duration]);
    }
  });
  obs.observe({ entryTypes: ['gc'] });
  return () => {
    obs.disconnect();
    return [...byKind].map(([k, [n, ms]]) => `${k} ${n} (${Math.round(ms)} ms)`).join(', ') || 'none';
  };
}
