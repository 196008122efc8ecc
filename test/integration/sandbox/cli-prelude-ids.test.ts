import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { call } from './http.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const cli = join(root, 'dist', 'cli.js');

beforeAll(() => {
  if (!existsSync(cli)) execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'ignore' });
}, 120_000);

function start(args: string[]): { child: ChildProcess; stdout: () => string; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [cli, 'sandbox', '--port', '0', '--users', '50', ...args], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exit = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return { child, stdout: () => out, exit };
}

const env = (stdout: string, name: string): string =>
  new RegExp(`^export ${name}=(.*)$`, 'm').exec(stdout)![1]!;

describe('profile-sync sandbox --prelude-ids usr', () => {
  it('serves a Prelude whose PATCH takes only usr_ ids: the source id is user_not_found, the looked-up id 204', async () => {
    const r = start(['--prelude-ids', 'usr']);
    try {
      await expect.poll(() => r.stdout(), { timeout: 60_000 }).toContain('PRELUDE_API_KEY=');
      expect(r.stdout()).toContain('Prelude ids usr');
      const url = env(r.stdout(), 'PRELUDE_URL');
      const app = env(r.stdout(), 'PRELUDE_APP_ID');
      const headers = { authorization: `Bearer ${env(r.stdout(), 'PRELUDE_API_KEY')}` };
      const users = (await call(url, 'GET', '/__sandbox/users')).body as {
        users: { id: string; external_id?: string }[];
      };
      const linked = users.users.find((u) => u.external_id !== undefined)!;
      const lookup = await call(url, 'POST', `/v2/session/apps/${app}/users/batch_lookup`, {
        headers,
        json: { external_ids: [linked.external_id] },
      });
      expect((lookup.body as { users: { id: string }[] }).users.map((u) => u.id)).toEqual([linked.id]);
      const patch = (id: string) =>
        call(url, 'PATCH', `/v2/session/apps/${app}/users/${encodeURIComponent(id)}/profile`, {
          headers,
          json: { profile: { first_name: 'Anna' } },
        });
      expect(await patch(linked.external_id!)).toMatchObject({
        status: 404,
        body: { code: 'user_not_found' },
      });
      expect((await patch(linked.id)).status).toBe(204);
    } finally {
      r.child.kill('SIGTERM');
      expect(await r.exit).toBe(0);
    }
    // The CLI's start-up is slow on the loaded shared machine: wait on its output, for up to a minute.
  }, 90_000);

  it('exits 2 naming the flag for a bad value', async () => {
    const r = start(['--prelude-ids', 'external_id']);
    expect(await r.exit).toBe(2);
  }, 60_000);
});
