// CPU time of the processes around a benchmark (the sandbox's, Redis's) and Redis's command counts, to
// tell where a run's time went (bench/redis-scale.bench.mjs: the unchanged re-run).
import { readFileSync } from 'node:fs';

/** CPU seconds (user + system) a process has used so far, from /proc (NaN where there is none). */
export function procCpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
  } catch {
    return Number.NaN;
  }
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
