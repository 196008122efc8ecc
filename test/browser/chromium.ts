import { existsSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';

/** Debian's Chromium (`apt-get install -y chromium`); `.ci/run` installs it when missing. */
export const CHROMIUM_PATH = '/usr/bin/chromium';

/**
 * Headless, and quiet on the network: without the background-networking flags Chromium keeps
 * calling Google's hosts, which a closed network refuses. Playwright's `launch()` gives each browser
 * a fresh temporary `--user-data-dir` of its own and removes it on close.
 */
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export type ChromiumProbe = { ok: true; browser: Browser } | { ok: false; why: string };

/** Starts Chromium, or says why it cannot (no binary, a launch that fails). Never throws. */
export async function launchChromium(): Promise<ChromiumProbe> {
  if (!existsSync(CHROMIUM_PATH)) return { ok: false, why: `${CHROMIUM_PATH} does not exist` };
  try {
    const browser = await chromium.launch({
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: ARGS,
      timeout: 30_000,
    });
    return { ok: true, browser };
  } catch (err) {
    return { ok: false, why: `Chromium did not start: ${(err as Error).message.split('\n')[0]}` };
  }
}

/** The loud message for a run that cannot drive a browser. */
export function cannotRun(why: string): string {
  return [
    '',
    '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!',
    `!!! browser test of the ops dashboard CANNOT RUN: ${why}`,
    '!!! install Debian Chromium: apt-get install -y chromium   (CI does this in .ci/run)',
    '!!! with CI=true this is a failure; otherwise the browser test is skipped',
    '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!',
    '',
  ].join('\n');
}
