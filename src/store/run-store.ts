import type { Redis } from 'ioredis';
import { TARGET_IDS, type TargetId } from '../core/targets.js';
import { goneKey, seenKey } from './deletions.js';
import { loadMaskKey } from './mask-key.js';
import type { RedisLayout } from './redis-layout.js';
import {
  COMPLETION_FIELDS,
  counterField,
  emptyScan,
  maskItem,
  newRunId,
  parseCompletion,
  parseGate,
  parseGates,
  parseRun,
  type RunCompletion,
} from './run-codec.js';
import { readHistory } from './run-history.js';
import {
  type AttemptRecord,
  type CounterDelta,
  DEFAULT_RETENTION,
  type HistoryEntry,
  type ItemListener,
  type JobGate,
  type RunItem,
  type RunKind,
  type RunOptions,
  type RunRecord,
  type RunRetention,
  type RunStatus,
  type ScanInfo,
} from './run-record.js';
import { type ScriptCommands, withScripts } from './run-scripts.js';
import { type SettleEntry, sendSettles, settleParts } from './settle-codec.js';
import type { StateWrite } from './state-store.js';

export {
  type CounterDelta,
  DEFAULT_RETENTION,
  type HistoryEntry,
  type ItemListener,
  type RunRetention,
} from './run-record.js';

/** One user of `RunStore.jobGates`: its settle member and its [hash, field] reads. */
type GateAsk = { member: string; reads: readonly (readonly [string, string])[] };

/**
 * Run records in Redis: one hash per run with meta and counters, a list of items (one per change,
 * rejection or failure, never one per unchanged user), and a per-user history index. Items are masked
 * here, at write time, unless the run was started with `showPii`: what is not stored cannot leak.
 * Never holds a secret: items carry requests as method, path, status and request id only.
 */
export class RunStore {
  readonly retention: RunRetention;
  private readonly redis: Redis & ScriptCommands;
  /** The fingerprint key (issue 12.7), read from Redis once per store, when a masked item is first written. */
  private maskKeyP: Promise<string> | undefined;
  private readonly listeners = new Set<ItemListener>();

  constructor(
    redis: Redis,
    private readonly layout: RedisLayout,
    retention: Partial<RunRetention> = {},
  ) {
    this.retention = { ...DEFAULT_RETENTION, ...retention };
    this.redis = withScripts(redis);
  }

  /** The Redis client and key layout behind the store (issue 5's set comparisons and `forget` use them). */
  backing(): { redis: Redis; layout: RedisLayout } {
    return { redis: this.redis, layout: this.layout };
  }

  /** Creates a run record (status `running`) and applies retention to older runs. */
  async create(kind: RunKind, options: RunOptions, now = Date.now()): Promise<string> {
    const id = newRunId(now);
    const scan: ScanInfo = { status: 'pending', complete: false, limited: false, records: 0, pages: 0 };
    await this.redis
      .multi()
      .hset(this.layout.run(id), {
        id,
        kind,
        status: 'running',
        startedAt: String(now),
        options: JSON.stringify(options),
        scan: JSON.stringify(scan),
        enqueued: '0',
        settled: '0',
        itemsMax: String(this.retention.itemsMax),
      })
      .zadd(this.layout.runs(), now, id)
      .exec();
    await this.prune(now, id);
    return id;
  }

  async get(runId: string): Promise<RunRecord | null> {
    const h = await this.redis.hgetall(this.layout.run(runId));
    if (!h.id) return null;
    return parseRun(h);
  }

  /** The newest run, or null. */
  async latestId(): Promise<string | null> {
    const [id] = await this.redis.zrevrange(this.layout.runs(), 0, 0);
    return id ?? null;
  }

  /** Runs, newest first (from the `offset`-th newest: the ops pages page through them). */
  async list(limit = 20, offset = 0): Promise<RunRecord[]> {
    const ids = await this.redis.zrevrange(this.layout.runs(), offset, offset + limit - 1);
    const runs = await Promise.all(ids.map((id) => this.get(id)));
    return runs.filter((r): r is RunRecord => r !== null);
  }

  /** How many runs are recorded. */
  async count(): Promise<number> {
    return this.redis.zcard(this.layout.runs());
  }

  /** The few fields that decide whether a run is over (cheaper than `get`). */
  async completion(runId: string): Promise<RunCompletion | null> {
    return parseCompletion(await this.redis.hmget(this.layout.run(runId), ...COMPLETION_FIELDS));
  }

  async setStatus(runId: string, status: RunStatus, extra: { error?: string } = {}): Promise<void> {
    const fields: Record<string, string> = { status };
    if (status !== 'running') fields.endedAt = String(Date.now());
    if (extra.error) fields.error = extra.error;
    await this.redis.hset(this.layout.run(runId), fields);
  }

  /**
   * Marks a run finished unless already finished, in one atomic step (a Lua script: no other process
   * can finish it in between); the per-job bookkeeping sets expire an hour later. Returns whether this
   * call ended the run.
   */
  async finish(runId: string, status: RunStatus, extra: { error?: string } = {}): Promise<boolean> {
    // Kept an hour, not deleted: a job still finishing (a stalled one rerun, an abort racing the drain)
    // must find its member settled rather than count a second time.
    const r = await this.redis.psFinish(
      3,
      this.layout.run(runId),
      this.layout.runPending(runId),
      this.layout.runSettled(runId),
      status,
      String(Date.now()),
      extra.error ?? '',
      3_600_000,
    );
    if (r === 1) await this.expireDisplaceable(runId);
    return r === 1;
  }

  /** Issue 11.3: the displaceable-items lists serve a running run only; kept an hour like `settled`. */
  private async expireDisplaceable(runId: string): Promise<void> {
    const m = this.redis.multi();
    for (const t of TARGET_IDS) m.pexpire(this.layout.runItemsDisplaceable(runId, t), 3_600_000);
    await m.exec();
  }

  /**
   * Ends the run if it is over (scan ended, every job settled), deciding its status and writing it in
   * one atomic step; returns the status set, or null (not over yet, already ended, or gone).
   */
  async finishIfDone(runId: string): Promise<RunStatus | null> {
    const r = await this.redis.psFinishIfDone(
      3,
      this.layout.run(runId),
      this.layout.runPending(runId),
      this.layout.runSettled(runId),
      String(Date.now()),
      3_600_000,
    );
    if (r) await this.expireDisplaceable(runId);
    return (r as RunStatus | null) ?? null;
  }

  /**
   * Merges `patch` into the run's scan info atomically (compare-and-set, retried when another process
   * changed it in between: no patch is lost). A run that does not exist (pruned, or Redis emptied) is
   * not re-created as a partial hash: nothing is written then.
   */
  async updateScan(
    runId: string,
    patch: Partial<ScanInfo>,
    /** Applies the patch only while this holds for the current scan info (checked in the same CAS). */
    when?: (current: ScanInfo) => boolean,
  ): Promise<ScanInfo> {
    const key = this.layout.run(runId);
    for (let attempt = 0; ; attempt++) {
      const raw = await this.redis.hget(key, 'scan');
      const current: ScanInfo = raw ? (JSON.parse(raw) as ScanInfo) : emptyScan();
      if (when && !when(current)) return current;
      const scan: ScanInfo = { ...current, ...patch };
      const r = await this.redis.psScanCas(1, key, raw ?? '', JSON.stringify(scan));
      if (r !== 0) return scan;
      if (attempt >= 1000) throw new Error(`run ${runId}: scan update kept conflicting`);
    }
  }

  /** Scan checkpoint for a restarted scan job: records flushed (counted) and records whose jobs were added. */
  async scanCheckpoint(runId: string): Promise<{ flushed: number; enqueued: number }> {
    const [f, e] = await this.redis.hmget(this.layout.run(runId), 'scanFlushed', 'scanEnqueued');
    return { flushed: Number(f ?? 0), enqueued: Number(e ?? 0) };
  }

  async setScanCheckpoint(
    runId: string,
    field: 'scanFlushed' | 'scanEnqueued',
    value: number,
  ): Promise<void> {
    await this.redis.hset(this.layout.run(runId), field, String(value));
  }

  /**
   * Records counters and items in one atomic step. With `settle`, only the first call for that member
   * records anything (a replayed or stalled-and-rerun job never counts twice); returns false then.
   */
  async record(
    runId: string,
    opts: {
      settle?: string;
      counters?: CounterDelta[];
      /** Raw run-hash fields to increment in the same step (the scan's checkpoint). */
      raw?: [string, number][];
      items?: RunItem[];
      pii?: boolean;
      now?: number;
      /** Also end the run if this was its last job (`finishIfDone`), in the same call (issue 11.2). */
      finish?: boolean;
      /** With `finish`: the job's target state, written first in the same call (`StateStore.writeOf`). */
      state?: StateWrite;
      /** With `finish`: told the status when this call ended the run (only one call does): the alerts. */
      onEnded?: (status: RunStatus) => void;
    },
  ): Promise<boolean> {
    const now = opts.now ?? Date.now();
    const items = await this.masked(opts.items ?? [], opts.pii);
    const p = settleParts(this.layout, runId, opts.counters ?? [], opts.raw ?? [], items);
    const w = opts.finish ? opts.state : undefined;
    const keys = [
      ...[this.layout.run(runId), this.layout.runItems(runId), this.layout.runSettled(runId)],
      ...(opts.finish ? [this.layout.runPending(runId)] : []),
      ...(w ? [w.key, w.unlinkedKey, w.keysKey, w.mutationsKey] : []),
      ...p.itemKeys,
    ];
    const args: (string | number)[] = [
      now,
      this.retention.maxAgeMs,
      this.retention.historyPerUser,
      runId,
      opts.settle ?? '',
      p.counters.length,
      ...p.counters.flat(),
      ...p.itemArgs,
    ];
    let r: number;
    if (opts.finish) {
      const [kept, ended] = await this.redis.psRecordFinish(
        keys.length,
        ...keys,
        ...args,
        now,
        3_600_000,
        opts.state?.field ?? '',
        opts.state?.value ?? '',
        opts.state?.ksField ?? '',
        opts.state?.ksJson ?? '',
        opts.state?.counter ?? 0,
      );
      if (ended) {
        await this.expireDisplaceable(runId);
        opts.onEnded?.(ended as RunStatus);
      }
      r = kept;
    } else r = await this.redis.psRecord(keys.length, ...keys, ...args);
    if (r === -1) return false;
    if (items.length) for (const l of this.listeners) l(runId, items);
    return true;
  }

  /** Issue 11: `record` + `finish` of several settles (each exactly once) in one call; per entry: recorded? */
  async recordMany(
    runId: string,
    entries: readonly SettleEntry[],
    opts: { pii: boolean; onEnded?: (status: RunStatus) => void },
  ): Promise<boolean[]> {
    const all = await Promise.all(
      entries.map(async (e) => ({ ...e, items: await this.masked(e.items, opts.pii) })),
    );
    const { kept, ended } = await sendSettles(this.redis, this.layout, this.retention, runId, all);
    if (ended) {
      await this.expireDisplaceable(runId);
      opts.onEnded?.(ended as RunStatus);
    }
    for (const [k, e] of all.entries())
      if (kept[k] && e.items.length) for (const l of this.listeners) l(runId, e.items);
    return kept;
  }

  /** Items as stored: masked unless the run records PII. */
  private async masked(items: RunItem[], pii: boolean | undefined): Promise<RunItem[]> {
    if (items.length === 0 || pii) return items;
    const key = await this.maskKey();
    return items.map((i) => maskItem(i, key));
  }

  /** Calls `listener` with every item this process records from now on (once each); returns the unsubscribe. */
  onItems(listener: ItemListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The install's fingerprint key (created on first use); a failed read is retried on the next call. */
  maskKey(): Promise<string> {
    this.maskKeyP ??= loadMaskKey(this.redis, this.layout).catch((err: unknown) => {
      this.maskKeyP = undefined;
      throw err;
    });
    return this.maskKeyP;
  }

  /** Marks sync jobs as enqueued for the run (idempotent per member); returns how many were new. */
  async addPending(runId: string, members: string[]): Promise<number> {
    if (members.length === 0) return 0;
    return this.redis.psPending(2, this.layout.run(runId), this.layout.runPending(runId), ...members);
  }

  async incr(runId: string, deltas: CounterDelta[]): Promise<void> {
    if (deltas.length === 0) return;
    const m = this.redis.multi();
    for (const [t, c, by] of deltas) m.hincrby(this.layout.run(runId), counterField(t, c), by);
    await m.exec();
  }

  /** Stops a target for the rest of the run (auth failure): its remaining jobs fail without a request. */
  async stopTarget(runId: string, target: TargetId, reason: string): Promise<boolean> {
    return (await this.redis.hsetnx(this.layout.run(runId), `stop:${target}`, reason)) === 1;
  }

  /** Asks every worker to drop the run's remaining work (`--max-failure-rate`, operator abort). */
  async requestAbort(runId: string, reason: string): Promise<void> {
    await this.redis.hsetnx(this.layout.run(runId), 'abortReason', reason);
  }

  /**
   * What a sync job checks before it sends anything: abort, a stopped target, PII flag; with `member`,
   * whether it already settled (a replay); with `reads` ([hash, field] pairs), those values too: all in
   * one round trip (issue 11.2).
   */
  async jobGate(
    runId: string,
    target: TargetId,
    member?: string,
    reads: readonly (readonly [string, string])[] = [],
  ): Promise<JobGate> {
    const keys = [this.layout.run(runId), this.layout.runSettled(runId), ...reads.map((r) => r[0])];
    const r = await this.redis.psGate(
      keys.length,
      ...keys,
      `stop:${target}`,
      member ?? '',
      ...reads.map((x) => x[1]),
    );
    return parseGate(r, reads.length);
  }

  /** `jobGate` for a sync batch's users (issue 11.4) in one round trip: a gate each, in order, same reads each. */
  async jobGates(runId: string, target: TargetId, users: readonly GateAsk[]): Promise<JobGate[]> {
    const n = users[0]?.reads.length ?? 0;
    const run = [this.layout.run(runId), this.layout.runSettled(runId)];
    const keys = [...run, ...users.flatMap((u) => u.reads.map((x) => x[0]))];
    const args = users.flatMap((u) => [u.member, ...u.reads.map((x) => x[1])]);
    const r = await this.redis.psGateMany(keys.length, ...keys, `stop:${target}`, n, ...args);
    return parseGates(r, users.length, n);
  }

  /** Remembers a failed attempt of a job, to be shown with its final item. */
  async addTry(runId: string, jobId: string, attempt: AttemptRecord): Promise<AttemptRecord[]> {
    const key = this.layout.runTries(runId);
    const prev = await this.tries(runId, jobId);
    const all = [...prev.filter((a) => a.attempt !== attempt.attempt), attempt];
    await this.redis.hset(key, jobId, JSON.stringify(all));
    return all;
  }

  async tries(runId: string, jobId: string): Promise<AttemptRecord[]> {
    const raw = await this.redis.hget(this.layout.runTries(runId), jobId);
    return raw ? (JSON.parse(raw) as AttemptRecord[]) : [];
  }

  /** Appends planned requests (dry run with a plan file); already masked by the caller. */
  async addPlan(runId: string, lines: unknown[]): Promise<void> {
    if (lines.length === 0) return;
    await this.redis.rpush(this.layout.runPlan(runId), ...lines.map((l) => JSON.stringify(l)));
  }

  async *plan(runId: string, batch = 1000): AsyncIterable<unknown> {
    for (let start = 0; ; start += batch) {
      const rows = await this.redis.lrange(this.layout.runPlan(runId), start, start + batch - 1);
      for (const r of rows) yield JSON.parse(r);
      if (rows.length < batch) return;
    }
  }

  async itemCount(runId: string): Promise<number> {
    return this.redis.llen(this.layout.runItems(runId));
  }

  async items(runId: string, offset = 0, limit = 1000): Promise<RunItem[]> {
    const rows = await this.redis.lrange(this.layout.runItems(runId), offset, offset + limit - 1);
    return rows.map((r) => JSON.parse(r) as RunItem);
  }

  /** A user's timeline across runs and targets, oldest first (run-history.ts). */
  async history(userId: string): Promise<HistoryEntry[]> {
    return readHistory(this.redis, this.layout, userId, this.retention.historyPerUser);
  }

  /** Deletes one run's keys (history entries pointing at it are dropped lazily on read). */
  async deleteRun(runId: string): Promise<void> {
    await this.redis
      .multi()
      .del(
        ...this.layout.runKeys(runId),
        seenKey(this.layout, runId),
        ...TARGET_IDS.map((t) => goneKey(this.layout, runId, t)),
      )
      .zrem(this.layout.runs(), runId)
      .exec();
  }

  /** Retention: drop runs beyond `keep` (oldest first) and runs older than `maxAgeMs`. */
  async prune(now = Date.now(), except?: string): Promise<string[]> {
    const runs = this.layout.runs();
    const old = await this.redis.zrangebyscore(runs, '-inf', now - this.retention.maxAgeMs);
    const total = await this.redis.zcard(runs);
    const excess =
      total > this.retention.keep
        ? await this.redis.zrange(runs, '0', String(total - this.retention.keep - 1))
        : [];
    const victims = [...new Set([...old, ...excess])].filter((id) => id !== except);
    for (const id of victims) await this.deleteRun(id);
    return victims;
  }
}
