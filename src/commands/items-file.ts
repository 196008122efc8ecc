import { closeSync, openSync, writeSync } from 'node:fs';
import type { RunItem, RunRecord } from '../store/run-record.js';
import type { RunStore } from '../store/run-store.js';

/**
 * `backfill --items-file FILE` (issue 11.3): every item of the run as a JSON line, as this process's
 * workers record it (masked as in the run record), however many the run record keeps
 * (`RUN_ITEMS_MAX`). Items recorded by workers of other processes (a daemon taking jobs of the same
 * queues) are not seen here: `finish` compares the lines written with the run's item total.
 */
export class ItemsFile {
  private fd: number | undefined;
  private runId: string | undefined;
  /** Items recorded before the run id was known (the scan may record rejections at once). */
  private readonly early = new Map<string, RunItem[]>();
  private readonly unsubscribe: () => void;
  written = 0;

  constructor(
    readonly path: string,
    runs: RunStore,
  ) {
    this.fd = openSync(path, 'w');
    this.unsubscribe = runs.onItems((runId, items) => {
      if (this.runId === undefined) {
        const list = this.early.get(runId) ?? [];
        list.push(...items);
        this.early.set(runId, list);
      } else if (runId === this.runId) this.write(items);
    });
  }

  /** The run whose items go to the file (others' items, taken by these workers, are ignored). */
  bind(runId: string): void {
    this.runId = runId;
    this.write(this.early.get(runId) ?? []);
    this.early.clear();
  }

  private write(items: RunItem[]): void {
    if (this.fd === undefined || items.length === 0) return;
    writeSync(this.fd, `${items.map((i) => JSON.stringify(i)).join('\n')}\n`);
    this.written += items.length;
  }

  /** Closes the file; returns a warning when the run recorded items this process did not see. */
  finish(run?: RunRecord): string | undefined {
    this.unsubscribe();
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
    if (!run) return undefined;
    const total = itemTotal(run);
    if (total <= this.written) return undefined;
    return `!! --items-file ${this.path} holds ${this.written} of the run's ${total} items: the other ${total - this.written} were recorded by workers of other processes (a daemon) and are only in the run record (up to RUN_ITEMS_MAX per target) and its counters`;
  }
}

/** Items the run recorded, kept or left out (exact for runs with a cap; the list length otherwise). */
export function itemTotal(run: RunRecord): number {
  let n = 0;
  for (const c of Object.values(run.targets)) {
    n += c.itemsKept ?? 0;
    for (const v of Object.values(c.itemsLeftOut ?? {})) n += v ?? 0;
  }
  return n;
}
