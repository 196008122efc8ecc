import { describe, expect, it } from 'vitest';
import { alertBody, scrubText } from '../../../src/queue/run-alerts.js';
import type { RunRecord } from '../../../src/store/run-record.js';

const run = {
  id: 'r1',
  kind: 'backfill',
  status: 'aborted',
  startedAt: 0,
  options: { targets: ['zephr'], dryRun: false, full: false, showPii: false, plan: false },
  scan: { status: 'aborted', complete: false, limited: false, records: 3, pages: 1 },
  targets: {
    zephr: {
      outcomes: {
        created: 2,
        updated: 0,
        unchanged: 0,
        unlinked: 0,
        rejected: 0,
        failed: 1,
        removed: 0,
        orphaned: 0,
      },
      requests: 3,
      planned: 0,
      retries: 0,
      rateLimited: 0,
      limitCuts: 0,
      skipped: 4,
      lookups: 0,
    },
  },
  enqueued: 7,
  settled: 7,
  abortReason: 'operator: bad data for Jane.Doe@Example.com and x@y.org',
} as unknown as RunRecord;

describe('alert body (issue 12.3)', () => {
  it('carries the event, run, counts and link; emails in a reason are masked unless RECORD_PII', () => {
    const b = alertBody(
      'run_aborted',
      'r1',
      run,
      {},
      { publicUrl: 'https://ops.example.test/', recordPii: false },
    );
    expect(b).toMatchObject({
      event: 'run_aborted',
      runId: 'r1',
      kind: 'backfill',
      status: 'aborted',
      counts: { zephr: { created: 2, failed: 1, skipped: 4 } },
      link: 'https://ops.example.test/runs/r1',
    });
    expect(b.text).toMatch(
      /^profile-sync: run r1 \(backfill\) ABORTED: operator: bad data for J\*\*\*@Example\.com/,
    );
    expect(b.text).toContain('https://ops.example.test/runs/r1');
    expect(JSON.stringify(b)).not.toMatch(/Jane\.Doe|x@y\.org/);
    const pii = alertBody('run_aborted', 'r1', run, {}, { recordPii: true });
    expect(pii.reason).toContain('Jane.Doe@Example.com');
    expect(pii.link).toBeUndefined();
  });

  it('auth_failed names the target and what to do; reasons are bounded', () => {
    const b = alertBody(
      'auth_failed',
      'r1',
      run,
      { target: 'zephr', reason: 'E_AUTH 401 refused' },
      { recordPii: false },
    );
    expect(b).toMatchObject({ event: 'auth_failed', target: 'zephr', reason: 'E_AUTH 401 refused' });
    expect(b.text).toMatch(/AUTH FAILED for zephr in run r1 .*retry-failed/);
    expect(scrubText('a'.repeat(2000), false)).toHaveLength(500);
  });
});
