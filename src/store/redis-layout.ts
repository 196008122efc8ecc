import { TARGET_IDS, type TargetId } from '../core/targets.js';

/**
 * Every Redis key profile-sync writes, in one place. All keys share the hash tag `{<prefix>}` so that
 * they land in one Redis Cluster slot: BullMQ's Lua scripts and ours touch several keys at once, which
 * Cluster allows only within one slot. BullMQ gets `{<prefix>}` as its own `prefix`, so its keys read
 * `{<prefix>}:sync-sunshine:wait` etc.
 *
 * | key                                   | type | what                                                   |
 * |---------------------------------------|------|--------------------------------------------------------|
 * | `{p}:state:<target>`                  | hash | userId -> last written payload and time (state-codec.ts) |
 * | `{p}:state:<target>:keys`             | hash | issue 11.4: key set id -> a payload's sorted key list  |
 * | `{p}:state:<target>:removals`         | str  | issue 11: count of state fields ever removed (remove job, forget): deletion detection's fast path |
 * | `{p}:mutations`                       | str  | issue 11: 65,536 16-bit counters (BITFIELD), one bumped by every change of a user's state, marker or link (mutations.ts) |
 * | `{p}:blocks`                          | hash | issue 11: block key -> what a scan concluded for a run of ~64 source users found unchanged (scan-blocks.ts) |
 * | `{p}:unlinked:<target>`               | hash | userId -> Prelude `user_not_found` marker: time and payload fingerprint (unlinked-marker.ts) |
 * | `{p}:throttle:<target>`               | zset | send times of the last window (sliding-window log)     |
 * | `{p}:runs`                            | zset | runId by start time                                    |
 * | `{p}:run:<runId>`                     | hash | run meta, status, counters per target and outcome      |
 * | `{p}:run:<runId>:items`               | list | one JSON item per change / rejection / failure, at most `itemsMax` per target |
 * | `{p}:run:<runId>:changeidx:<target>`  | list | issue 11.3: `<index>/<outcome>` of kept change items a failure may displace |
 * | `{p}:run:<runId>:plan`                | list | planned requests (dry run with `--plan`)               |
 * | `{p}:run:<runId>:tries`               | hash | jobId -> earlier failed attempts of that job           |
 * | `{p}:run:<runId>:pending` / `:settled`| set  | sync jobs enqueued / finished for good (exactly-once)  |
 * | `{p}:run:<runId>:users:<b>`           | hash | issue 11.4: userKey -> `<itemIndex>,...` of the run's kept items, for `history <userId>`; `<b>` = the key's first 2 hex digits (256 small hashes a run) |
 * | `{p}:history:<userKey>`               | zset | before issue 11.4: `<runId>/<itemIndex>` by time (still read until it expires) |
 * | `{p}:run:<runId>:seen` / `:gone:<t>`  | set  | issue 5: ids a complete scan read / users who left (src/pipeline/deletions.ts) |
 * | `{p}:run:<runId>:seen:counts`         | hash | issue 11: per target, seen users that had a state, and the removal count at the scan's start |
 * | `{p}:tombstones`                      | hash | issue 5: sha256(userId) -> what `forget` did (no PII)   |
 * | `{p}:run:<runId>:orphans:<t>`          | set  | issue 5: users left orphaned by a held/ignored removal  |
 * | `{p}:orphans:<target>`                 | set  | issue 5: users orphaned in a target, across runs        |
 * | `{p}:links:prelude`                    | hash | source id -> Prelude user id, how and when it was found (link table, src/store/links.ts) |
 * | `{p}:links:prelude:how`                | hash | issue 10 until 11.4: source id -> how and when its link was found (`{how, at}`); read, emptied by the scan's upgrade |
 * | `{p}:throttle:<target>:adapt`          | hash | the adaptive (AIMD) limit of a target's throttle        |
 * | `{p}:throttle:<target>:pause`          | str  | issue 8.5: a 429's "paused until" (Redis clock), shared by every process |
 * | `{p}:run:<runId>:confirm-absent` / `:confirm-present` | set | issue 8: re-check of held deletion candidates (reconcile-deletions) |
 * | `{p}:run:<runId>:absent`               | set  | issue 8: scan pass re-check of ids the source did not list |
 * | `{p}:schedule:tick:<n>` / `:lock` / `:current` | str | daemon schedule: one run per tick, its lock, the current run |
 * | `{p}:mask-key`                         | str  | issue 12.7: the per-install key of the masks' fingerprints (a secret; src/store/mask-key.ts) |
 * | `{p}:user-sync:<userKey>`              | str  | issue 12.2: the run a `POST /users/{id}/sync` started, SET NX PX: repeats collapse into it |
 * | `{p}:alert:<runId>:<event>`            | str  | issue 12.3: an alert claimed (SET NX): one per event and run, whichever process sees it |
 * | `{p}:<queue>:<jobId>:lock` etc.        | BullMQ | BullMQ's own keys under the same prefix (read by the daemon and `forget`) |
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
    // As `[prefix, ...parts].join(':')` without the copy (issue 11: several keys per written user).
    return parts.length === 0 ? this.bullPrefix : `${this.bullPrefix}:${parts.join(':')}`;
  }

  state(target: TargetId): string {
    return this.key('state', target);
  }
  /** Issue 11.4: the payload key lists the state values name by id (state-codec.ts); never per user. */
  stateKeys(target: TargetId): string {
    return this.key('state', target, 'keys');
  }
  /** Issue 11: how many state fields of the target were ever removed (src/store/deletions.ts). */
  stateRemovals(target: TargetId): string {
    return this.key('state', target, 'removals');
  }
  unlinked(target: TargetId): string {
    return this.key('unlinked', target);
  }
  /** Issue 11: the mutation counters the scan's block conclusions are checked against (mutations.ts). */
  mutations(): string {
    return this.key('mutations');
  }
  /** Issue 11: the scan's block conclusions (scan-blocks.ts); no user id in it. */
  scanBlocks(): string {
    return this.key('blocks');
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
  /** Issue 11.3: the kept change items of one target (`<index>/<outcome>`), oldest first, for displacement. */
  runItemsDisplaceable(runId: string, target: TargetId): string {
    return this.key('run', runId, 'changeidx', target);
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
  /**
   * Issue 11.4: the history index of one run, in 256 buckets by the user key's first 2 hex digits, so
   * that each stays a small (listpack-encoded) hash: ~35 B per user, dropped with the run.
   */
  runHistory(runId: string, userKey: string): string {
    return this.key('run', runId, 'users', userKey.slice(0, 2));
  }
  throttleAdapt(target: TargetId): string {
    return this.key('throttle', target, 'adapt');
  }
  throttlePause(target: TargetId): string {
    return this.key('throttle', target, 'pause');
  }
  runConfirmAbsent(runId: string): string {
    return this.key('run', runId, 'confirm-absent');
  }
  runConfirmPresent(runId: string): string {
    return this.key('run', runId, 'confirm-present');
  }
  runAbsent(runId: string): string {
    return this.key('run', runId, 'absent');
  }
  runSeen(runId: string): string {
    return this.key('run', runId, 'seen');
  }
  /** Issue 11: counts of the run's seen users that had a state, per target (src/store/deletions.ts). */
  runSeenCounts(runId: string): string {
    return this.key('run', runId, 'seen', 'counts');
  }
  runGone(runId: string, target: TargetId): string {
    return this.key('run', runId, 'gone', target);
  }
  runOrphans(runId: string, target: TargetId): string {
    return this.key('run', runId, 'orphans', target);
  }
  orphans(target: TargetId): string {
    return this.key('orphans', target);
  }
  tombstones(): string {
    return this.key('tombstones');
  }
  links(target: 'prelude' = 'prelude'): string {
    return this.key('links', target);
  }
  /** Issue 10: how (`import`, `external_id`, `email`, `create`) and when each link was found; since issue 11.4 in the link's value (links.ts), this hash only read. */
  linksHow(target: 'prelude' = 'prelude'): string {
    return this.key('links', target, 'how');
  }
  scheduleTick(tick: number): string {
    return this.key('schedule', 'tick', String(tick));
  }
  scheduleLock(): string {
    return this.key('schedule', 'lock');
  }
  scheduleCurrent(): string {
    return this.key('schedule', 'current');
  }
  /** Issue 12.7: the key of the fingerprints masked values carry; created once (SET NX), never rotated. */
  maskKey(): string {
    return this.key('mask-key');
  }
  /** Issue 12.2: the run an ops-API sync request for this user (`userKey`, a hash) started; short-lived. */
  userSyncRequest(userKey: string): string {
    return this.key('user-sync', userKey);
  }
  /** Issue 12.3: claimed (SET NX) by the process that sends `event`'s alert for the run. */
  alertSent(runId: string, event: string): string {
    return this.key('alert', runId, event);
  }
  /** Start of every BullMQ key of one queue (`{p}:<queue>:`): `forget` finds a user's jobs by it. */
  bullQueueBase(queue: string): string {
    return `${this.bullPrefix}:${queue}:`;
  }
  /** BullMQ's lock of one active job; its value is the worker token. */
  bullJobLock(queue: string, jobId: string): string {
    return this.key(queue, jobId, 'lock');
  }
  /** `{p}:`, the start of every key of the prefix. */
  keyBase(): string {
    return `${this.bullPrefix}:`;
  }
  /** SCAN pattern matching every key of the prefix. */
  allKeys(): string {
    return `${this.bullPrefix}:*`;
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
      ...TARGET_IDS.map((t) => this.runItemsDisplaceable(runId, t)),
      ...Array.from({ length: 256 }, (_, b) => this.runHistory(runId, b.toString(16).padStart(2, '0'))),
    ];
  }
}

/** BullMQ queue names (no `:` allowed). */
export const SCAN_QUEUE = 'scan';
export function syncQueueName(target: TargetId): string {
  return `sync-${target}`;
}
