import type { Outcome } from '../../core/types.js';
import type { RunItem, RunRecord } from '../../store/run-record.js';
import type { RunStore } from '../../store/run-store.js';

/**
 * The run page's item sections, read a window at a time. A run's items are one Redis list in the
 * order they were recorded (src/store/run-scripts.ts), changes, failures and removals mixed, up to
 * `RUN_ITEMS_MAX` per target (10,000 by default): a page never loads them all. Each section starts at
 * its own list index (`?changes=`, `?failures=`, `?removals=`), reads LRANGE windows from there until
 * it has a page of its own items, and stops after `maxScan` list entries so that a sparse section
 * costs a bounded read too (its next link then continues the scan where this one stopped).
 */

export type SectionName = 'changes' | 'failures' | 'removals';
export const SECTIONS: readonly SectionName[] = ['changes', 'failures', 'removals'];

const SECTION_OUTCOMES: Record<SectionName, readonly Outcome[]> = {
  changes: ['created', 'updated', 'unchanged', 'unlinked'],
  failures: ['failed', 'rejected'],
  removals: ['removed', 'orphaned'],
};

export interface SectionPage {
  /** The section's items on this page, with their index in the run's item list. */
  items: { index: number; item: RunItem }[];
  /** Where the next page of this section starts (a list index), when there may be more. */
  next?: number;
  /** The list index this page started at. */
  from: number;
}

export interface SectionOptions {
  /** Items of one section per page. @defaultValue 50 */
  pageSize?: number;
  /** List entries per LRANGE. @defaultValue 500 */
  window?: number;
  /** List entries one section reads at most per page. @defaultValue 2000 */
  maxScan?: number;
}

/**
 * One page of each section. `cursors` are the list indexes to start from (0 when absent). A section
 * whose outcomes the run's counters show none of is not read at all.
 */
export async function readSections(
  runs: RunStore,
  run: RunRecord,
  cursors: Partial<Record<SectionName, number>>,
  opts: SectionOptions = {},
): Promise<{ total: number; sections: Record<SectionName, SectionPage> }> {
  const pageSize = opts.pageSize ?? 50;
  const window = opts.window ?? 500;
  const maxScan = opts.maxScan ?? 2000;
  const total = await runs.itemCount(run.id);
  // Windows are aligned, so two sections reading the same stretch share one LRANGE.
  const windows = new Map<number, Promise<RunItem[]>>();
  const at = (start: number) => {
    let w = windows.get(start);
    if (!w) {
      w = runs.items(run.id, start, window);
      windows.set(start, w);
    }
    return w;
  };
  const read = async (name: SectionName): Promise<SectionPage> => {
    const from = Math.min(Math.max(0, cursors[name] ?? 0), total);
    const out: SectionPage = { items: [], from };
    if (!hasAny(run, name)) return out;
    const wanted = SECTION_OUTCOMES[name];
    let i = from;
    while (i < total && i - from < maxScan) {
      const start = Math.floor(i / window) * window;
      const items = await at(start);
      if (items.length === 0) break; // the list shrank under us (retention)
      for (let k = i - start; k < items.length; k++) {
        const item = items[k]!;
        if (!wanted.includes(item.outcome)) continue;
        out.items.push({ index: start + k, item });
        if (out.items.length === pageSize) {
          if (start + k + 1 < total) out.next = start + k + 1;
          return out;
        }
      }
      i = start + items.length;
    }
    if (i < total) out.next = i; // scan cap reached: continue from here
    return out;
  };
  const [changes, failures, removals] = await Promise.all(SECTIONS.map(read));
  return { total, sections: { changes: changes!, failures: failures!, removals: removals! } };
}

/** Whether the run's counters show any outcome of the section (counters are exact, items may be capped). */
export function hasAny(run: RunRecord, name: SectionName): boolean {
  return Object.values(run.targets).some((c) => SECTION_OUTCOMES[name].some((o) => c.outcomes[o] > 0));
}

/** `?changes=N` etc.: a list index, or undefined when absent or not a whole number. */
export function cursorsFrom(query: URLSearchParams): Partial<Record<SectionName, number>> {
  const out: Partial<Record<SectionName, number>> = {};
  for (const s of SECTIONS) {
    const v = Number(query.get(s));
    if (query.has(s) && Number.isInteger(v) && v >= 0) out[s] = v;
  }
  return out;
}
