// The built project (dist/, `npm run build` first) as the benchmarks load it: its paths, the engine's
// modules every engine bench imports, and the clean-up of a bench's Redis prefix.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository's root. */
export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** A module of dist/src. */
export const dist = (p) => join(root, 'dist', 'src', p);
/** A module of dist/jobs. */
export const distJobs = (p) => join(root, 'dist', 'jobs', p);

/**
 * The engine's modules. A function, not top-level imports: a bench that patches ioredis first
 * (bench/lib/redis-count.mjs) loads them after.
 */
export async function loadEngine() {
  const [{ loadConfig }, { Engine }, { JOBS }, { startRun, waitForRun }, { createLogger }] =
    await Promise.all([
      import(dist('config/load.js')),
      import(dist('queue/engine.js')),
      import(distJobs('index.js')),
      import(distJobs('run-actions.js')),
      import(dist('log.js')),
    ]);
  return { loadConfig, Engine, JOBS, startRun, waitForRun, createLogger };
}

/** Deletes every key under the `{prefix}` hash tag, in SCAN batches. */
export async function cleanPrefix(redis, prefix) {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `{${prefix}}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) await redis.del(...keys);
  } while (cursor !== '0');
}
