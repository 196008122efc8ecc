import type { Redis } from 'ioredis';
import { userKey } from '../core/hashing.js';
import type { RedisLayout } from './redis-layout.js';
import type { HistoryEntry, RunItem, RunKind } from './run-record.js';

/**
 * A user's timeline across runs and targets, oldest first, at most `historyPerUser` entries (the
 * newest). Read from each retained run's history index (issue 11.4, one pipelined HGET per run) and
 * from the per-user zset written before it (entries of pruned runs dropped there).
 */
export async function readHistory(
  redis: Redis,
  layout: RedisLayout,
  userId: string,
  historyPerUser: number,
): Promise<HistoryEntry[]> {
  const uk = userKey(userId);
  const legacyKey = layout.history(uk);
  const runIds = await redis.zrange(layout.runs(), '0', '-1');
  const p = redis.pipeline();
  for (const runId of runIds) p.hget(layout.runHistory(runId, uk), uk);
  p.zrange(legacyKey, '0', '-1');
  const res = (await p.exec()) ?? [];
  const refs = new Map<string, { runId: string; index: number; legacy: boolean }>();
  runIds.forEach((runId, i) => {
    const v = res[i]?.[1] as string | null | undefined;
    for (const n of v ? v.split(',') : [])
      refs.set(`${runId}/${n}`, { runId, index: Number(n), legacy: false });
  });
  for (const ref of (res[runIds.length]?.[1] as string[] | undefined) ?? []) {
    const slash = ref.lastIndexOf('/');
    if (!refs.has(ref))
      refs.set(ref, { runId: ref.slice(0, slash), index: Number(ref.slice(slash + 1)), legacy: true });
  }
  // Oldest first: runs by start time (the order of `runs`), items by index within a run.
  const order = new Map(runIds.map((id, i) => [id, i]));
  const sorted = [...refs.entries()].sort(
    ([, a], [, b]) => (order.get(a.runId) ?? -1) - (order.get(b.runId) ?? -1) || a.index - b.index,
  );
  const out: HistoryEntry[] = [];
  const dangling: string[] = [];
  const kinds = new Map<string, RunKind | null>();
  for (const [ref, { runId, index, legacy }] of sorted) {
    if (!kinds.has(runId)) kinds.set(runId, (await redis.hget(layout.run(runId), 'kind')) as RunKind | null);
    const kind = kinds.get(runId);
    const raw = kind ? await redis.lindex(layout.runItems(runId), index) : null;
    if (!kind || !raw) {
      if (legacy) dangling.push(ref);
      continue;
    }
    const item = JSON.parse(raw) as RunItem;
    // A user-key collision (64-bit hash), or a change displaced by a failure (issue 11.3), names
    // another user: filter by the real id.
    if (item.userId !== userId) continue;
    out.push({ runId, kind, index, item });
  }
  if (dangling.length) await redis.zrem(legacyKey, ...dangling);
  return out.slice(-historyPerUser);
}
