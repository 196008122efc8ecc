// CPU time of the processes around a benchmark (the sandbox's, Redis's) and Redis's command counts, to
// tell where a run's time went (bench/redis-scale.bench.mjs: the unchanged re-run).
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks a second (USER_HZ), in which /proc gives utime and stime. */
const TICK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime + stime, in seconds, of a /proc `stat` file (a process's or one of its threads'). */
function statCpu(path) {
  const stat = readFileSync(path, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / TICK;
}

/** CPU seconds (user + system) a process has used so far, from /proc (NaN where there is none). */
export function procCpuSeconds(pid) {
  try {
    return statCpu(`/proc/${pid}/stat`);
  } catch {
    return Number.NaN;
  }
}

/**
 * A process's CPU seconds split into its main thread and its other threads (V8's platform workers:
 * parallel scavenge, concurrent marking and compiling; libuv's pool), and its context switches
 * (voluntary: it waited; involuntary: it was preempted).
 */
export function threadCpu(pid) {
  const out = { main: 0, other: 0 };
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      out[Number(tid) === pid ? 'main' : 'other'] += statCpu(`/proc/${pid}/task/${tid}/stat`);
    } catch {} // a thread that ended meanwhile
  }
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  out.voluntary = Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)[1]);
  out.involuntary = Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(status)[1]);
  return out;
}

/** Redis's own CPU seconds so far (INFO cpu: every client's commands, not only the engine's). */
export async function redisCpuSeconds(redis) {
  const info = await redis.info('cpu');
  const get = (k) => Number(info.match(new RegExp(`^${k}:([0-9.]+)`, 'm'))?.[1] ?? Number.NaN);
  return get('used_cpu_user') + get('used_cpu_sys');
}

/** BENCH_CMDSTATS=1: Redis commands during the re-run, calls and time (INFO commandstats delta; others' commands included). */
export function cmdDelta(before, after) {
  const parse = (s) =>
    Object.fromEntries(
      [...s.matchAll(/^cmdstat_(\S+):calls=(\d+),usec=(\d+)/gm)].map((m) => [
        m[1],
        [Number(m[2]), Number(m[3])],
      ]),
    );
  const [b, a] = [parse(before), parse(after)];
  return Object.entries(a)
    .map(([k, [calls, usec]]) => [k, calls - (b[k]?.[0] ?? 0), usec - (b[k]?.[1] ?? 0)])
    .filter(([, d]) => d > 0)
    .sort((x, y) => y[2] - x[2])
    .map(([k, d, us]) => `${k}=${d} (${(us / 1000).toFixed(0)} ms)`)
    .join(' ');
}
