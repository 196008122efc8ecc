import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { createSourceConnector } from '../../src/connectors/source/connector.js';
import type { SourceConnector } from '../../src/connectors/types.js';
import { SyncError } from '../../src/core/errors.js';
import type { SourceRecord } from '../../src/core/types.js';
import { createLogger } from '../../src/log.js';
import { SANDBOX_SOURCE_TOKEN, type Sandbox, startSandbox } from '../../src/sandbox/index.js';

/** The source connector against the sandbox's identity-service simulator (seed 002). */

const logger = createLogger({ level: 'silent' });
const USERS = 2_000;
let sandbox: Sandbox;

function connector(env: Record<string, string> = {}): SourceConnector {
  const config = loadConfig({ ...sandbox.env, ...env });
  return createSourceConnector({ config: config.source, http: config.http }, { logger });
}

async function collect(it: AsyncIterable<SourceRecord>): Promise<SourceRecord[]> {
  const out: SourceRecord[] = [];
  for await (const r of it) out.push(r);
  return out;
}

async function inspect(path: string, init?: { method: string; body: unknown }): Promise<unknown> {
  const res = await fetch(`${sandbox.urls.source}/__sandbox/${path}`, {
    method: init?.method ?? 'GET',
    headers: { 'content-type': 'application/json' },
    body: init ? JSON.stringify(init.body) : undefined,
  });
  expect(res.ok).toBe(true);
  return res.json();
}

beforeAll(async () => {
  sandbox = await startSandbox({ port: 0, users: USERS, seed: 7, rateLimit: null });
});
afterAll(async () => {
  await sandbox?.close();
});
beforeEach(() => {
  sandbox.sims.source.reset();
});

describe('source connector against the sandbox', () => {
  it('scans every user exactly once, in pages, with awkward ids intact', async () => {
    const c = connector({ SOURCE_PAGE_SIZE: '150' });
    expect(await c.count()).toBe(USERS);
    const pages: number[] = [];
    const records = await collect(c.scan({ onPage: (p) => pages.push(p.size) }));
    expect(records.every((r) => r.ok)).toBe(true);
    const ids = records.map((r) => (r.ok ? r.user.id : ''));
    expect(new Set(ids).size).toBe(USERS);
    const stored = (await inspect('users')) as { id: string }[];
    expect(new Set(ids)).toEqual(new Set(stored.map((u) => u.id)));
    expect(pages).toEqual([...Array(13).fill(150), USERS - 13 * 150]);
    // every request was sorted (the simulator answers 400 to sortBy without sortOrder and vice versa)
    expect(sandbox.sims.source.counters().byRoute['GET /user']).toEqual({ '200': 14 });
    const awkward = ids.filter((id) => /[ /:%+?#&'\u0080-\u{10ffff}]/u.test(id));
    expect(awkward.length).toBeGreaterThan(100);
    await c.close();
  });

  it('getUser reads awkward ids back through GET /user/{id}/profile; unknown -> null', async () => {
    const c = connector();
    const stored = (await inspect('users')) as { id: string; firstName?: string | null }[];
    const awkward = stored.filter((u) => /[ /:%+?#&'\u0080-\u{10ffff}]/u.test(u.id)).slice(0, 40);
    expect(awkward.length).toBe(40);
    for (const u of awkward) {
      const r = await c.getUser(u.id);
      expect(r).toMatchObject({ ok: true, user: { id: u.id } });
      if (r?.ok) expect(r.user.firstName).toBe(u.firstName ?? undefined);
    }
    expect(await c.getUser('no such user / really')).toBeNull();
    await c.close();
  });

  it('bearer auth with SOURCE_TOKEN works; a wrong password is an auth SyncError without the secret', async () => {
    const bearer = connector({
      SOURCE_USERNAME: '',
      SOURCE_PASSWORD: '',
      SOURCE_TOKEN: SANDBOX_SOURCE_TOKEN,
    });
    await bearer.check();
    await bearer.close();
    const wrong = connector({ SOURCE_PASSWORD: 'wrong-secret-123' });
    const err = (await wrong.check().catch((e) => e)) as SyncError;
    expect(err).toBeInstanceOf(SyncError);
    expect(err.errorClass).toBe('auth');
    expect(err.status).toBe(401);
    expect(err.message).not.toContain('wrong-secret-123');
    await wrong.close();
  });

  it('a page that keeps failing stops the scan with a SyncError after the records before it', async () => {
    sandbox.sims.source.setFaults([
      { kind: 'status', status: 503, match: { route: '/user', query: { firstResult: '399' } } },
    ]);
    const c = connector({ SOURCE_PAGE_SIZE: '200' });
    let seen = 0;
    const err = await (async () => {
      for await (const _ of c.scan()) seen++;
    })().catch((e) => e);
    expect(err).toBeInstanceOf(SyncError);
    expect(err.errorClass).toBe('transient');
    expect(err.status).toBe(503);
    expect(seen).toBe(400);
    await c.close();
  });

  it('a reset on one page is retried at the HTTP level and the scan completes', async () => {
    sandbox.sims.source.setFaults([
      { kind: 'reset', times: 1, match: { route: '/user', query: { firstResult: '999' } } },
    ]);
    const c = connector({ SOURCE_PAGE_SIZE: '500' });
    expect(await collect(c.scan())).toHaveLength(USERS);
    expect(sandbox.sims.source.requests().filter((r) => r.status === 0)).toHaveLength(1); // the reset happened
    await c.close();
  });

  it('a 429 on a page is rate_limited with the Retry-After wait, not retried', async () => {
    sandbox.sims.source.setRateLimit({ perMinute: 60, burst: 2 });
    const c = connector({ SOURCE_PAGE_SIZE: '100' });
    const err = await collect(c.scan()).catch((e) => e);
    expect(err).toBeInstanceOf(SyncError);
    expect(err.errorClass).toBe('rate_limited');
    expect(err.retryAfterMs).toBeGreaterThan(0);
    expect(err.retryAfterMs % 1000).toBe(0); // whole seconds from the header, not the default guess
    expect(sandbox.sims.source.counters().byRoute['GET /user']?.['429']).toBe(1);
    await c.close();
  });

  it('records that fail validation are rejected, naming the field; the stream goes on', async () => {
    await inspect('users', {
      method: 'POST',
      body: {
        raw: [
          { id: 'zz-bad-first', firstName: 12 },
          { id: `zz-${'x'.repeat(300)}` },
          { firstName: 'no id at all' },
          { id: 'zz-long-email', email: `${'a'.repeat(330)}@example.com` },
        ],
      },
    });
    const c = connector({ SOURCE_PAGE_SIZE: '500' });
    const records = await collect(c.scan());
    const rejected = records.filter((r) => !r.ok);
    expect(rejected).toEqual(
      expect.arrayContaining([
        { ok: false, userId: 'zz-bad-first', reason: 'firstName: expected a string or null' },
        { ok: false, reason: 'id: longer than 256 characters' },
        { ok: false, reason: 'id: missing' },
        { ok: false, userId: 'zz-long-email', reason: 'email: longer than 320 characters' },
      ]),
    );
    expect(rejected).toHaveLength(4);
    expect(records.filter((r) => r.ok)).toHaveLength(USERS);
    await c.close();
  });
});
