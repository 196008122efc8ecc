import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/paths.js';
import { type Sandbox, startSandbox } from '../../src/sandbox/index.js';
import { runCli } from '../helpers/cli.js';
import { freePort } from '../helpers/own-redis.js';
import { cleanPrefix, REDIS_URL, redisClient, testPrefix } from '../helpers/redis.js';
import { assertBuilt, type CliProcess, spawnCli, waitFor } from '../reliability/processes.js';
import { cannotRun, launchChromium } from './chromium.js';

/**
 * Issue 12.5: the ops dashboard in a real browser (headless Debian Chromium driven by playwright-core),
 * as an operator uses it: a daemon over the sandbox after a backfill with changes (and a held run),
 * the token typed at the Basic prompt, the queue board, the run list, the latest run's masked diffs,
 * the nav's user search and the user's timeline, the targets. Nothing destructive is pressed, and in
 * read-only mode no page offers it.
 *
 * Screenshots go to test-results/screenshots/ (git-ignored).
 */

const IS_CI = process.env.CI === 'true';
const probe = await launchChromium();
if (!probe.ok && !IS_CI) console.warn(cannotRun(probe.why));

const SHOTS = join(packageRoot(), 'test-results', 'screenshots');
const TOKEN = 'browser-test-token-0123456789abcdef';
const USERS = 60;
/** Pages that need the token. */
const PROTECTED = ['/dashboard', '/runs', '/runs/any', '/users/any', '/targets'];

interface Summary {
  runId: string;
  status: string;
}

// In CI a missing or broken Chromium is a failed test, never a quiet skip.
describe.runIf(!probe.ok && IS_CI)('headless Chromium for the ops dashboard test', () => {
  it('starts', () => {
    if (!probe.ok) throw new Error(cannotRun(probe.why));
  });
});

describe.runIf(probe.ok)('ops dashboard in headless Chromium (read-only, token)', () => {
  let browser: Browser;
  let sandbox: Sandbox;
  let daemon: CliProcess | undefined;
  let ctx: BrowserContext;
  let page: Page;
  let base = '';
  const prefix = testPrefix('browser');
  const redis = redisClient();
  const runIds: string[] = [];
  /** Source users whose email the second backfill changed, with their new (raw) email. */
  const changed = new Map<string, string>();
  const rawEmails: string[] = [];

  beforeAll(async () => {
    if (!probe.ok) throw new Error(cannotRun(probe.why));
    browser = probe.browser;
    assertBuilt();
    mkdirSync(SHOTS, { recursive: true });
    sandbox = await startSandbox({ port: 0, users: USERS, rateLimit: null });
    const env: Record<string, string> = {
      ...sandbox.env,
      REDIS_URL,
      PROFILE_SYNC_PREFIX: prefix,
      LOG_LEVEL: 'error',
      SUNSHINE_RATE_LIMIT: '100000',
      ZEPHR_RATE_LIMIT: '100000',
      PRELUDE_RATE_LIMIT: '100000',
      // Removals act in Sunshine, so the safety brake has something to hold.
      SUNSHINE_ON_DELETE: 'delete',
    };
    const backfill = async (expected: { code: number; status: string }): Promise<Summary> => {
      const r = await runCli(['backfill', '--json'], env);
      if (r.code !== expected.code)
        throw new Error(`backfill exited ${r.code}, not ${expected.code}: ${r.stderr.slice(-2000)}`);
      const summary = JSON.parse(r.stdout) as Summary;
      expect(summary.status).toBe(expected.status);
      return summary;
    };
    runIds.push((await backfill({ code: 0, status: 'completed' })).runId);
    // A new address for a share of users: the second run's diffs are masked emails.
    const res = await fetch(`${sandbox.urls.source}/__sandbox/users/mutate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ share: 0.1, seed: 7, fields: ['email'] }),
    });
    const ids = ((await res.json()) as { changed: string[] }).changed;
    expect(ids.length).toBeGreaterThan(0);
    const auth = `Basic ${Buffer.from(`${env.SOURCE_USERNAME}:${env.SOURCE_PASSWORD}`).toString('base64')}`;
    for (const id of ids) {
      const p = await fetch(`${sandbox.urls.source}/user/${encodeURIComponent(id)}/profile`, {
        headers: { authorization: auth },
      });
      const email = ((await p.json()) as { email: string }).email;
      changed.set(id, email);
      // The address before the change (the mutation put `.m7` before the `@`): raw, it must not show either.
      rawEmails.push(email, email.replace('.m7@', '@'));
    }
    // And 10% of the users gone from the source, over MAX_DELETE_RATE (5%): the safety brake holds
    // the removals, so the run is `held` and has deletions an operator could confirm (not here).
    const gone = await fetch(`${sandbox.urls.source}/__sandbox/users/remove`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ share: 0.1, seed: 11 }),
    });
    for (const id of ((await gone.json()) as { removed: string[] }).removed) changed.delete(id);
    expect(changed.size).toBeGreaterThan(0);
    // `held` exits 1 (docs/deletions.md).
    runIds.push((await backfill({ code: 1, status: 'held' })).runId);

    const port = await freePort();
    daemon = spawnCli(['daemon'], {
      ...env,
      LOG_LEVEL: 'info',
      OPS_PORT: String(port),
      OPS_DASHBOARD_TOKEN: TOKEN,
      OPS_DASHBOARD_READ_ONLY: 'true',
      // No scheduled run while the browser looks: the latest run stays the second backfill.
      SYNC_SCHEDULE: '0 0 1 1 *',
    });
    base = `http://127.0.0.1:${port}`;
    await waitFor('the daemon ready', async () => {
      const r = await fetch(`${base}/readyz`).catch(() => null);
      return r?.status === 200;
    });
    // Any user name; the token is the password (src/http/auth.ts).
    ctx = await browser.newContext({
      httpCredentials: { username: 'ops', password: TOKEN },
      viewport: { width: 1280, height: 860 },
    });
    // A missing element fails its step in 10 s, not at the test's timeout.
    ctx.setDefaultTimeout(10_000);
    page = await ctx.newPage();
  }, 60_000);

  afterAll(async () => {
    await ctx?.close();
    await browser?.close();
    daemon?.child.kill('SIGTERM');
    if (daemon) await daemon.exited;
    await sandbox?.close();
    await cleanPrefix(redis, prefix);
    await redis.quit();
  }, 30_000);

  /** Fails when the page shows any changed user's raw email. */
  async function expectNoRawEmail(p: Page): Promise<void> {
    const html = await p.content();
    for (const email of rawEmails) expect(html).not.toContain(email);
  }

  it('without the token: 401 with a Basic challenge; Chromium with a wrong token is refused too', async () => {
    const anon = await browser.newContext();
    const wrong = await browser.newContext({
      httpCredentials: { username: 'ops', password: 'not-the-token' },
    });
    try {
      for (const path of PROTECTED) {
        // The browser's own HTTP stack, without credentials: the challenge a person sees as a prompt.
        const r = await anon.request.get(`${base}${path}`);
        expect(r.status(), path).toBe(401);
        expect(r.headers()['www-authenticate'], path).toMatch(/^Basic realm=/);
        expect(await r.text(), path).not.toContain('profile-sync queues');
        // A page with the wrong token never loads: Chromium gives up on the rejected credentials.
        const p = await wrong.newPage();
        const failed = await p.goto(`${base}${path}`).then(
          (res) => `loaded with HTTP ${res?.status()}`,
          (err: Error) => err.message,
        );
        expect(failed, path).toMatch(/ERR_INVALID_AUTH_CREDENTIALS|HTTP 401/);
        await p.close();
      }
    } finally {
      await anon.close();
      await wrong.close();
    }
  });

  it('the queue board (bull-board) loads with the token and shows the scan and sync queues, read-only', async () => {
    const r = await page.goto(`${base}/dashboard`);
    expect(r?.status()).toBe(200);
    for (const q of ['scan', 'sync-sunshine', 'sync-zephr', 'sync-prelude']) {
      await page.getByRole('link', { name: q, exact: true }).first().waitFor({ state: 'visible' });
    }
    await page.screenshot({ path: join(SHOTS, 'bull-board.png'), fullPage: true });
    // One sync queue's completed jobs: payloads masked, and no action buttons in read-only mode.
    await page.goto(`${base}/dashboard/queue/sync-sunshine?status=completed`);
    await page.getByText('***@').first().waitFor({ state: 'visible' });
    for (const action of ['Clean', 'Retry all', 'Pause', 'Empty', 'Remove', 'Promote all'])
      expect(await page.getByRole('button', { name: action, exact: true }).count(), action).toBe(0);
    await expectNoRawEmail(page);
    await page.screenshot({ path: join(SHOTS, 'bull-board-queue.png') });
  });

  /**
   * Read-only mode: no form that deletes, retries or syncs (`form.action-*`) on the page. The latest
   * run is held, so without read-only its page offers `form.action-confirm-deletes`.
   */
  async function expectNoActions(p: Page): Promise<void> {
    expect(await p.locator('form[class^="action-"], form[class*=" action-"]').count(), p.url()).toBe(0);
  }

  it('the run list shows both runs, newest first; the latest (held) run shows masked email diffs and no button', async () => {
    const r = await page.goto(`${base}/runs`);
    expect(r?.status()).toBe(200);
    await page.locator('main#page').waitFor({ state: 'visible' });
    for (const href of ['/runs', '/targets', '/dashboard'])
      expect(await page.locator(`nav#nav a[href="${href}"]`).count(), href).toBe(1);
    const rows = page.locator('table#runs tr[data-run-id]');
    await rows.first().waitFor({ state: 'visible' });
    const ids = await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-run-id')));
    expect(ids.slice(0, 2)).toEqual([runIds[1], runIds[0]]);
    expect((await rows.first().locator('td.status').textContent())?.trim()).toBeTruthy();
    await expectNoActions(page);
    await page.screenshot({ path: join(SHOTS, 'runs.png') });

    // Open the latest run as a person would: its link in the first row.
    await rows.first().locator('a.run-link').click();
    await page.waitForURL(`${base}/runs/${runIds[1]}`);
    await page.locator('table#run-targets').waitFor({ state: 'visible' });
    const [userId] = [...changed.keys()];
    const change = page.locator(`section#changes .change[data-user="${userId}"][data-target="sunshine"]`);
    await change.first().waitFor({ state: 'visible' });
    const diff = await change.first().locator('.diff').allTextContents();
    expect(diff.join('\n')).toMatch(/\*\*\*@\S*#[0-9a-f]{4}/);
    for (const section of ['section#failures', 'section#removals'])
      expect(await page.locator(section).count(), section).toBe(1);
    expect(await page.locator('#held-reason').textContent()).toContain('safety brake');
    await expectNoRawEmail(page);
    await expectNoActions(page);
    await change.first().scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(SHOTS, 'run.png') });
  });

  it("the nav's user search opens a changed user's timeline, across both runs", async () => {
    const [userId] = [...changed.keys()];
    await page.goto(`${base}/runs`);
    await page.locator('form#user-search input[name="id"]').fill(userId!);
    await page.locator('form#user-search input[name="id"]').press('Enter');
    await page.waitForURL(`${base}/users/${encodeURIComponent(userId!)}`);
    const events = page.locator('section#timeline tr.event');
    await events.first().waitFor({ state: 'visible' });
    // Created in the first run, updated in the second, in Sunshine and Zephr at least.
    expect(await events.count()).toBeGreaterThanOrEqual(4);
    const text = await page.locator('section#timeline').textContent();
    for (const runId of runIds) expect(text).toContain(runId);
    expect(await page.locator('#prelude-link').count()).toBe(1);
    await expectNoRawEmail(page);
    await expectNoActions(page);
    await page.screenshot({ path: join(SHOTS, 'user.png'), fullPage: true });
  });

  it('the targets page lists each target', async () => {
    const r = await page.goto(`${base}/targets`);
    expect(r?.status()).toBe(200);
    for (const t of ['sunshine', 'zephr', 'prelude'])
      await page.locator(`table#targets-status tr[data-target="${t}"]`).waitFor({ state: 'visible' });
    await expectNoActions(page);
    await page.screenshot({ path: join(SHOTS, 'targets.png') });
  });
});
