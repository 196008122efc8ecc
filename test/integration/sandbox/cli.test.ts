import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { callEachService } from './services.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const cli = join(root, 'dist', 'cli.js');

beforeAll(() => {
  // `npm test` builds first (pretest); a direct vitest run on a fresh clone builds here.
  if (!existsSync(cli)) execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'ignore' });
}, 120_000);

interface Run {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exit: Promise<number | null>;
}

function run(args: string[]): Run {
  const child = spawn(process.execPath, [cli, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exit = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return { child, stdout: () => out, stderr: () => err, exit };
}

function parseExports(stdout: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const m of stdout.matchAll(/^export (\w+)=(.*)$/gm)) env[m[1]!] = m[2]!.replace(/^'(.*)'$/, '$1');
  return env;
}

describe('profile-sync sandbox', () => {
  it('prints the URLs and export lines, serves all four services, and exits 0 on SIGTERM', async () => {
    const r = run(['sandbox', '--port', '0', '--users', '50']);
    try {
      await expect.poll(() => r.stdout(), { timeout: 15_000 }).toContain('export PRELUDE_API_KEY=');
      const out = r.stdout();
      const env = parseExports(out);
      // No PRELUDE_LINK_BY: the default `usr` ids, linked by external_id as against the real service.
      expect(Object.keys(env)).toHaveLength(12);
      expect(out).toContain('Prelude ids usr');
      for (const name of ['source', 'sunshine', 'zephr', 'prelude']) {
        const url = env[`${name.toUpperCase()}_URL`]!;
        expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
        expect(out).toMatch(new RegExp(`^${name}\\s+${url}$`, 'm'));
      }
      expect(out.indexOf(`sunshine ${env.SUNSHINE_URL}`)).toBeLessThan(out.indexOf('export SOURCE_URL'));
      expect(out).toContain('export SOURCE_TOKEN=sandbox-source-token');
      expect(await callEachService(env)).toEqual({ source: 200, sunshine: 404, zephr: 200, prelude: 204 });
      r.child.kill('SIGTERM');
      expect(await r.exit).toBe(0);
      expect(r.stderr()).toContain('SIGTERM, closed');
    } finally {
      r.child.kill('SIGKILL');
    }
  });

  it('exits 0 on SIGINT too', async () => {
    const r = run(['sandbox', '--port', '0', '--users', '5', '--rate-limit', '0', '--read-only']);
    try {
      await expect.poll(() => r.stdout(), { timeout: 15_000 }).toContain('export PRELUDE_API_KEY=');
      expect(r.stdout()).toContain('no rate limit');
      expect(r.stdout()).toContain('read-only source');
      r.child.kill('SIGINT');
      expect(await r.exit).toBe(0);
    } finally {
      r.child.kill('SIGKILL');
    }
  });

  it('exits 2 naming the option for a bad value', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sandbox-cli-'));
    writeFileSync(join(dir, 'bad.json'), '{"keys": []}');
    const cases: [string[], string][] = [
      [['--port', 'abc'], '--port'],
      [['--port', '70000'], '--port'],
      [['--users', '-1'], '--users'],
      [['--seed', '1.5'], '--seed'],
      [['--rate-limit', 'fast'], '--rate-limit'],
      [['--burst', '0'], '--burst'],
      [['--zephr-jwks', join(dir, 'missing.json')], '--zephr-jwks'],
      [['--zephr-jwks', join(dir, 'bad.json')], '--zephr-jwks'],
      [['--prelude-unknown-share', '1.5'], '--prelude-unknown-share'],
    ];
    // In parallel: each run is a node start-up (about 2 s here), and they are independent.
    const runs = cases.map(([args]) => run(['sandbox', '--port', '0', ...args]));
    for (const [i, [args, flag]] of cases.entries()) {
      const r = runs[i]!;
      expect(await r.exit, args.join(' ')).toBe(2);
      expect(r.stderr(), args.join(' ')).toContain(flag);
      expect(r.stdout()).toBe('');
    }
  }, 90_000); // nine cold starts of the CLI at once on two busy cores
});
