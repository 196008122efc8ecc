import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/paths.js';
import { linkIdOf, linksKey } from '../../src/store/links.js';
import { cleanPrefix, REDIS_URL, redisClient, testPrefix } from '../helpers/redis.js';

/** `profile-sync links ...` through the built CLI, on the real Redis, under a prefix of its own. */

const CLI = join(packageRoot(), 'dist', 'cli.js');
const prefix = testPrefix('linkscli');
const dir = mkdtempSync(join(tmpdir(), 'ps-links-'));
let redis: Redis;

const ENV = {
  PATH: process.env.PATH ?? '',
  REDIS_URL,
  PROFILE_SYNC_PREFIX: prefix,
  SOURCE_URL: 'http://127.0.0.1:9',
  PRELUDE_URL: 'http://127.0.0.1:9',
  PRELUDE_APP_ID: 'app',
  PRELUDE_API_KEY: 'k',
};

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: ENV, cwd: packageRoot() });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

beforeAll(() => {
  redis = redisClient();
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
});
afterAll(async () => {
  await cleanPrefix(redis, prefix);
  await redis.quit();
});

describe('profile-sync links (prelude)', () => {
  it('imports a CSV (BOM, quotes, CRLF), counts, lists as CSV, removes', async () => {
    const csv = file(
      'ok.csv',
      '\uFEFFsource_id,prelude_user_id\r\n"a,1",usr_1\r\nb 2,usr_2\r\n"c""3",usr_3\r\n',
    );
    const imp = await run(['links', 'import', 'prelude', csv]);
    expect(imp.stderr).toBe('');
    expect(imp.code).toBe(0);
    expect(imp.stdout).toContain(`imported 3 link(s) into {${prefix}}:links:prelude`);
    const stored = Object.entries(await redis.hgetall(linksKey(prefix))).map(([k, v]) => [k, linkIdOf(v)]);
    expect(Object.fromEntries(stored)).toEqual({ 'a,1': 'usr_1', 'b 2': 'usr_2', 'c"3': 'usr_3' });
    expect((await run(['links', 'count', 'prelude'])).stdout).toBe('3\n');
    const list = await run(['links', 'list', 'prelude', '--ids-only']);
    expect(list.stdout.split('\n').sort()).toEqual(
      ['', 'source_id,prelude_user_id', '"a,1",usr_1', 'b 2,usr_2', '"c""3",usr_3'].sort(),
    );
    // Issue 10: how and when each link was found.
    const how = await run(['links', 'list', 'prelude']);
    const lines = how.stdout.trim().split('\n');
    expect(lines[0]).toBe('source_id,prelude_user_id,how,found_at');
    const rows = lines.slice(1).sort();
    expect(rows).toHaveLength(3);
    expect(rows[0]).toMatch(/^"a,1",usr_1,import,\d{4}-\d\d-\d\dT/);
    expect(rows[1]).toMatch(/^"c""3",usr_3,import,\d{4}-/);
    expect(rows[2]).toMatch(/^b 2,usr_2,import,\d{4}-/);
    const rm = await run(['links', 'remove', 'prelude', 'a,1', 'nobody']);
    expect(rm.stdout).toBe('removed 1 of 2 link(s)\n');
    expect(await redis.hlen(linksKey(prefix))).toBe(2);
  }, 60_000); // six CLI processes (issue 10 added one)

  it('a file with bad rows imports nothing and names every bad line (exit 1)', async () => {
    const before = await redis.hgetall(linksKey(prefix));
    const csv = file('bad.csv', 'source_id,prelude_user_id\nx1,usr_x1\nx2\n,usr_x3\nx4,usr_x4\n');
    const res = await run(['links', 'import', 'prelude', csv]);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('2 bad row(s)');
    expect(res.stderr).toContain('line 3: expected 2 fields');
    expect(res.stderr).toContain('line 4: empty source_id');
    expect(await redis.hgetall(linksKey(prefix))).toEqual(before);
  });

  it('an unknown target is a usage error (exit 2)', async () => {
    const res = await run(['links', 'count', 'zephr']);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain("only 'prelude' has a link table");
  });
});
