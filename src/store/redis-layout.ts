import type { TargetId } from '../core/targets.js';

/**
 * Every Redis key profile-sync writes, in one place. All keys share the hash tag `{<prefix>}` so that
 * they land in one Redis Cluster slot: BullMQ's Lua scripts and ours touch several keys at once, which
 * Cluster allows only within one slot. BullMQ gets `{<prefix>}` as its own `prefix`, so its keys read
 * `{<prefix>}:sync-sunshine:wait` etc.
 *
 * | key                                   | type | what                                                   |
 * |---------------------------------------|------|--------------------------------------------------------|
 * | `{p}:state:<target>`                  | hash | userId -> last written payload, its hash, time         |
 * | `{p}:unlinked:<target>`               | hash | userId -> Prelude `user_not_found` marker (time, hash)  |
 * | `{p}:throttle:<target>`               | zset | send times of the last window (sliding-window log)     |
 * | `{p}:runs`                            | zset | runId by start time                                    |
 * | `{p}:run:<runId>`                     | hash | run meta, status, counters per target and outcome      |
 * | `{p}:run:<runId>:items`               | list | one JSON item per change / rejection / failure         |
 * | `{p}:run:<runId>:plan`                | list | planned requests (dry run with `--plan`)               |
 * | `{p}:run:<runId>:tries`               | hash | jobId -> earlier failed attempts of that job           |
 * | `{p}:run:<runId>:pending` / `:settled`| set  | sync jobs enqueued / finished for good (exactly-once)  |
 * | `{p}:history:<userKey>`               | zset | `<runId>/<itemIndex>` by time, for `history <userId>`  |
 * | `{p}:run:<runId>:seen` / `:gone:<t>`  | set  | issue 5: ids a complete scan read / users who left (src/pipeline/deletions.ts) |
 * | `{p}:tombstones`                      | hash | issue 5: sha256(userId) -> what `forget` did (no PII)   |
 */
export class RedisLayout {
  /** The BullMQ `prefix` option. */
  readonly bullPrefix: string;

  constructor(readonly prefix: string) {
    if (prefix.includes(':') || /[{}\s]/.test(prefix)) {
      throw new Error(`invalid Redis prefix ${JSON.stringify(prefix)}: no ':', braces or spaces`);
    }
    this.bullPrefix = `{${prefix}}`;
  }

  key(...parts: string[]): string {
    return [this.bullPrefix, ...parts].join(':');
  }

  state(target: TargetId): string {
    return this.key('state', target);
  }
  unlinked(target: TargetId): string {
    return this.key('unlinked', target);
  }
  throttle(target: TargetId): string {
    return this.key('throttle', target);
  }
  runs(): string {
    return this.key('runs');
  }
  run(runId: string): string {
    return this.key('run', runId);
  }
  runItems(runId: string): string {
    return this.key('run', runId, 'items');
  }
  runPlan(runId: string): string {
    return this.key('run', runId, 'plan');
  }
  runTries(runId: string): string {
    return this.key('run', runId, 'tries');
  }
  runPending(runId: string): string {
    return this.key('run', runId, 'pending');
  }
  runSettled(runId: string): string {
    return this.key('run', runId, 'settled');
  }
  history(userKey: string): string {
    return this.key('history', userKey);
  }
  /** Every per-run key, for retention. */
  runKeys(runId: string): string[] {
    return [
      this.run(runId),
      this.runItems(runId),
      this.runPlan(runId),
      this.runTries(runId),
      this.runPending(runId),
      this.runSettled(runId),
    ];
  }
}

/** BullMQ queue names (no `:` allowed). */
export const SCAN_QUEUE = 'scan';
export function syncQueueName(target: TargetId): string {
  return `sync-${target}`;
}
