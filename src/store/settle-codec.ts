import type { Redis } from 'ioredis';
import { userKey } from '../core/hashing.js';
import type { RedisLayout } from './redis-layout.js';
import { counterField } from './run-codec.js';
import type { CounterDelta, RunItem, RunRetention } from './run-record.js';
import type { ScriptCommands } from './run-scripts.js';
import type { StateWrite } from './state-store.js';

/**
 * The keys and arguments of one settle as the run store's record scripts take them (run-scripts.ts
 * RECORD_LUA's counters and items; RECORD_MANY_LUA's per-settle part), written once for `record` and
 * `recordMany` (src/store/run-store.ts).
 */

/** One settle of `RunStore.recordMany`: a job's member, its counters and items, and its target state. */
export interface SettleEntry {
  settle: string;
  counters: CounterDelta[];
  items: RunItem[];
  /** The job's target state, written in the same call (`StateStore.writeOf`). */
  state?: StateWrite;
}

/** A settle's counter pairs, per-item keys and per-item arguments (items already masked as stored). */
export function settleParts(
  layout: RedisLayout,
  runId: string,
  counters: CounterDelta[],
  raw: [string, number][],
  items: RunItem[],
): { counters: [string, number][]; itemKeys: string[]; itemArgs: string[] } {
  const pairs: [string, number][] = [
    ...counters.map(([t, c, by]): [string, number] => [counterField(t, c), by]),
    ...raw,
  ];
  const itemKeys: string[] = [];
  const itemArgs: string[] = [];
  for (const i of items) {
    const uk = userKey(i.userId);
    itemKeys.push(layout.runHistory(runId, uk), layout.runItemsDisplaceable(runId, i.target));
    itemArgs.push(i.target, i.outcome, JSON.stringify(i), uk);
  }
  return { counters: pairs, itemKeys, itemArgs };
}

/** RECORD_MANY_LUA's keys after the four fixed ones, and its arguments after the six fixed ones. */
export function settleManyParts(
  layout: RedisLayout,
  runId: string,
  entries: readonly SettleEntry[],
): { keys: string[]; args: (string | number)[] } {
  const keys: string[] = [];
  const args: (string | number)[] = [];
  for (const e of entries) {
    const p = settleParts(layout, runId, e.counters, [], e.items);
    args.push(e.settle, p.counters.length, ...p.counters.flat(), e.items.length, ...p.itemArgs);
    const s = e.state;
    if (s) keys.push(s.key, s.unlinkedKey, s.keysKey, s.mutationsKey);
    args.push(s?.field ?? '', s?.value ?? '', s?.ksField ?? '', s?.ksJson ?? '', s?.counter ?? 0);
    keys.push(...p.itemKeys);
  }
  return { keys, args };
}

/** RECORD_MANY_LUA for `entries` (items as stored): per entry whether it recorded, and the status set if the call ended the run. */
export async function sendSettles(
  redis: Redis & ScriptCommands,
  layout: RedisLayout,
  retention: RunRetention,
  runId: string,
  entries: readonly SettleEntry[],
): Promise<{ kept: boolean[]; ended: string }> {
  const { keys, args } = settleManyParts(layout, runId, entries);
  const now = Date.now();
  const r = await redis.psRecordMany(
    4 + keys.length,
    layout.run(runId),
    layout.runItems(runId),
    layout.runSettled(runId),
    layout.runPending(runId),
    ...keys,
    ...[now, retention.maxAgeMs, retention.historyPerUser, runId, now, 3_600_000],
    ...args,
  );
  const ended = String(r.pop() ?? '');
  return { kept: r.map((x) => x !== -1), ended };
}
