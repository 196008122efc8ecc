import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maybeFinishRun } from '../../../src/queue/run-lifecycle.js';
import { RedisLayout } from '../../../src/store/redis-layout.js';
import type { RunOptions, RunStatus, ScanInfo } from '../../../src/store/run-record.js';
import { RunStore } from '../../../src/store/run-store.js';
import { cleanPrefix, redisClient, testPrefix } from '../../helpers/redis.js';

/**
 * Issue 8.8: run finish and scan updates come from any process (scan job, sync jobs, failed-job
 * handler, the command's poll). Each "process" here has its own Redis connection and RunStore, and
 * they all write at once: no patch may be lost, and a run ends exactly once.
 */

const OPTS: RunOptions = { targets: ['zephr'], dryRun: false, full: false, showPii: false, plan: false };
const PROCESSES = 8;

describe('RunStore: concurrent finish / updateScan from several processes', () => {
  const prefix = testPrefix('run-atomic');
  const layout = new RedisLayout(prefix);
  let clients: Redis[] = [];
  let stores: RunStore[] = [];

  beforeAll(() => {
    clients = Array.from({ length: PROCESSES }, () => redisClient());
    stores = clients.map((c) => new RunStore(c, layout));
  });
  afterAll(async () => {
    await cleanPrefix(clients[0]!, prefix);
    await Promise.all(clients.map((c) => c.quit()));
  });

  it('concurrent updateScan patches of different fields all survive', async () => {
    const patches: Partial<ScanInfo>[] = [
      { records: 41 },
      { pages: 3 },
      { total: 1000 },
      { error: 'page 4 failed' },
      { limited: true },
      { complete: true },
      { status: 'done' },
      { records: 41, pages: 3 },
    ];
    for (let round = 0; round < 40; round++) {
      const runId = await stores[0]!.create('backfill', OPTS);
      await Promise.all(patches.map((p, i) => stores[i % PROCESSES]!.updateScan(runId, p)));
      const scan = (await stores[0]!.get(runId))!.scan;
      expect(scan, `round ${round}`).toEqual({
        status: 'done',
        complete: true,
        limited: true,
        total: 1000,
        records: 41,
        pages: 3,
        error: 'page 4 failed',
      });
    }
  });

  it('concurrent finish calls with different statuses: exactly one wins, the record is whole', async () => {
    const statuses: RunStatus[] = [
      'completed',
      'aborted',
      'failed',
      'held',
      'completed',
      'aborted',
      'failed',
      'held',
    ];
    for (let round = 0; round < 40; round++) {
      const runId = await stores[0]!.create('backfill', OPTS);
      await stores[0]!.addPending(runId, ['zephr/a']);
      const won = await Promise.all(
        statuses.map((s, i) => stores[i % PROCESSES]!.finish(runId, s, { error: `by ${i}` })),
      );
      expect(won.filter(Boolean)).toHaveLength(1);
      const winner = won.indexOf(true);
      const run = (await stores[0]!.get(runId))!;
      expect(run.status).toBe(statuses[winner]);
      expect(run.error).toBe(`by ${winner}`);
      expect(run.endedAt).toBeGreaterThan(0);
      expect(await clients[0]!.pttl(layout.runPending(runId))).toBeGreaterThan(0);
    }
  });

  it('maybeFinishRun from every process at once ends the run once; an abort asked meanwhile is honoured', async () => {
    for (let round = 0; round < 20; round++) {
      const runId = await stores[0]!.create('backfill', OPTS);
      await stores[0]!.addPending(runId, ['zephr/a']);
      await stores[0]!.record(runId, { settle: 'zephr/a', counters: [['zephr', 'updated', 1]] });
      await stores[0]!.requestAbort(runId, 'operator');
      const [, ...ended] = await Promise.all([
        stores[1]!.updateScan(runId, { status: 'done', complete: true, records: 1, pages: 1 }),
        ...stores.map((s) => maybeFinishRun(s, runId)),
      ]);
      // The scan may end after some finishers looked: one more look, as the next settle would do.
      ended.push(await maybeFinishRun(stores[0]!, runId));
      expect(ended.filter((s) => s !== null)).toEqual(['aborted']);
      const run = (await stores[0]!.get(runId))!;
      expect(run.status).toBe('aborted');
      // An aborted run never counts as a complete scan, and the scan's other fields are kept.
      expect(run.scan).toMatchObject({ status: 'done', complete: false, records: 1, pages: 1 });
    }
  });

  it('a conditional scan update (the failed-job handler) never overrides a scan that ended meanwhile', async () => {
    const ended = (s: ScanInfo) => ['done', 'failed', 'aborted'].includes(s.status);
    for (let round = 0; round < 20; round++) {
      const runId = await stores[0]!.create('backfill', OPTS);
      await stores[0]!.updateScan(runId, { status: 'running' });
      await Promise.all([
        stores[1]!.updateScan(runId, { status: 'done', complete: true }),
        stores[2]!.updateScan(
          runId,
          { status: 'failed', complete: false, error: 'stalled' },
          (c) => !ended(c),
        ),
      ]);
      const scan = (await stores[0]!.get(runId))!.scan;
      // Either order is fine, but never a mix: 'done' wins when it came first, else 'done' overwrote it.
      if (scan.error) expect(scan).toMatchObject({ status: 'done', complete: true, error: 'stalled' });
      else expect(scan).toMatchObject({ status: 'done', complete: true });
      await stores[0]!.updateScan(runId, { status: 'failed' }, (c) => !ended(c));
      expect((await stores[0]!.get(runId))!.scan.status).toBe('done');
    }
  });

  it('a run that is not over is not finished; one that is gone is not re-created by a scan update', async () => {
    const runId = await stores[0]!.create('backfill', OPTS);
    await stores[0]!.addPending(runId, ['zephr/a']);
    await stores[0]!.updateScan(runId, { status: 'done' });
    expect(await maybeFinishRun(stores[0]!, runId)).toBeNull(); // a job still pending
    await stores[0]!.record(runId, { settle: 'zephr/a', counters: [['zephr', 'updated', 1]] });
    expect(await maybeFinishRun(stores[0]!, runId)).toBe('completed');
    expect(await maybeFinishRun(stores[0]!, runId)).toBeNull();

    const gone = 'nonexistent-run';
    await stores[0]!.updateScan(gone, { status: 'running' });
    expect(await clients[0]!.exists(layout.run(gone))).toBe(0);
  });
});
