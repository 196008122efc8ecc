import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sandboxOptions } from '../../../src/commands/sandbox.js';
import { loadConfig } from '../../../src/config/load.js';
import { createZephrConnector } from '../../../src/connectors/zephr/target.js';
import type { FieldMap, SourceUser } from '../../../src/core/types.js';
import { createLogger } from '../../../src/log.js';
import { type Sandbox, startSandbox } from '../../../src/sandbox/index.js';
import { assertBuilt, runCli } from '../../helpers/cli.js';

/**
 * Issue 12.6: the JWK set `profile-sync zephr jwks` prints, given to the Zephr simulator as the tenant's
 * key set (`sandbox --zephr-jwks FILE`), lets the connector's RS256/ES256-signed writes through, and a
 * rotation (next key published, then swapped, then the old one retired) never fails a write.
 */
const pem = (type: 'rsa' | 'ec') =>
  (type === 'rsa'
    ? generateKeyPairSync('rsa', { modulusLength: 2048 })
    : generateKeyPairSync('ec', { namedCurve: 'P-256' })
  ).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;

const KEY_A = pem('rsa');
const KEY_B = pem('ec');
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];
const logger = createLogger({ level: 'silent' });
const mapping = {
  fields: ['first_name', 'email'],
  map: (u: SourceUser): FieldMap => ({ first_name: u.firstName ?? '', email: u.email ?? '' }),
};

interface Jwk {
  kid: string;
  alg: string;
  kty: string;
  [k: string]: unknown;
}

let dir: string;
const sandboxes: Sandbox[] = [];

beforeAll(() => {
  assertBuilt();
  dir = mkdtempSync(join(tmpdir(), 'jwks-'));
});
afterAll(async () => {
  await Promise.all(sandboxes.map((s) => s.close()));
  rmSync(dir, { recursive: true, force: true });
});

/** The env of one rotation step (what the operator deploys). */
function env(
  keys: { current: string; currentId?: string; next?: string; nextId?: string },
  zephrUrl = 'http://127.0.0.1:9',
) {
  return {
    SOURCE_URL: 'http://127.0.0.1:9',
    ZEPHR_URL: zephrUrl,
    ZEPHR_APP_ID: 'profile-sync',
    ZEPHR_JWT_PRIVATE_KEY: keys.current,
    ...(keys.currentId ? { ZEPHR_JWT_KEY_ID: keys.currentId } : {}),
    ...(keys.next ? { ZEPHR_JWT_NEXT_PRIVATE_KEY: keys.next } : {}),
    ...(keys.nextId ? { ZEPHR_JWT_NEXT_KEY_ID: keys.nextId } : {}),
  };
}

/** `profile-sync zephr jwks` for that env: the parsed set and the file given to the simulator. */
async function printJwks(
  name: string,
  e: Record<string, string>,
): Promise<{ keys: Jwk[]; file: string; text: string }> {
  const r = await runCli(['zephr', 'jwks'], e);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  const file = join(dir, `${name}.json`);
  writeFileSync(file, r.stdout);
  return { ...(JSON.parse(r.stdout) as { keys: Jwk[] }), file, text: r.stdout };
}

/** A Zephr simulator whose tenant verifies with this JWKS file (as `sandbox --zephr-jwks FILE`). */
async function zephrWith(file: string): Promise<string> {
  const opts = sandboxOptions({
    port: '0',
    users: '1',
    seed: '1',
    host: '127.0.0.1',
    rateLimit: '0',
    zephrJwks: file,
  });
  const sb = await startSandbox(opts);
  sandboxes.push(sb);
  return sb.urls.zephr;
}

/** One connector write (GET + PUT, both signed) for a fresh user: throws on a 401. */
async function write(e: Record<string, string>, userId: string): Promise<void> {
  const config = loadConfig(e).targets.zephr!;
  const c = createZephrConnector({ config, http: loadConfig(e).http, mapping, rateLimit: 1000 }, { logger });
  try {
    const user: SourceUser = { id: userId, firstName: 'Ann', lastName: null, email: `${userId}@example.org` };
    const r = await c.write({ userId, user, previous: null, next: mapping.map(user) });
    // ZEPHR_WRITE_MODE owned (the default): one PUT carries the token, nothing read first.
    expect(r.requests.map((q) => q.status)).toEqual([200]);
  } finally {
    await c.close();
  }
}

/** Each test spawns the CLI a few times (about 1-2 s each, more on a loaded machine). */
const SLOW = 180_000;

describe('zephr jwks: the printed set verifies signed writes, through a key rotation', () => {
  it(
    'prints public keys only, with kid and alg, and the simulator accepts writes signed with them',
    async () => {
      const { keys, file, text } = await printJwks('one', env({ current: KEY_A, currentId: 'key-a' }));
      expect(keys).toHaveLength(1);
      expect(keys[0]).toMatchObject({ kid: 'key-a', alg: 'RS256', kty: 'RSA', use: 'sig' });
      for (const m of PRIVATE_MEMBERS) expect(keys[0]).not.toHaveProperty(m);
      expect(text).not.toContain('PRIVATE KEY');
      const zephr = await zephrWith(file);
      await write(env({ current: KEY_A, currentId: 'key-a' }, zephr), 'one-1');
      // A kid not configured is the key's thumbprint, in the set and in the token alike.
      const plain = await printJwks('thumb', env({ current: KEY_B }));
      expect(plain.keys[0]!.kid).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(plain.keys[0]).toMatchObject({ alg: 'ES256', kty: 'EC', crv: 'P-256' });
      await write(env({ current: KEY_B }, await zephrWith(plain.file)), 'thumb-1');
    },
    SLOW,
  );

  it(
    'rotation: publish the next key, swap, retire the old one; no write fails on the way',
    async () => {
      const step0 = env({ current: KEY_A, currentId: 'key-a' });
      const step1 = env({ current: KEY_A, currentId: 'key-a', next: KEY_B, nextId: 'key-b' });
      const step2 = env({ current: KEY_B, currentId: 'key-b', next: KEY_A, nextId: 'key-a' });
      const step3 = env({ current: KEY_B, currentId: 'key-b' });

      const set0 = await printJwks('step0', step0);
      const set1 = await printJwks('step1', step1);
      const set2 = await printJwks('step2', step2);
      const set3 = await printJwks('step3', step3);
      expect(set1.keys.map((k) => k.kid)).toEqual(['key-a', 'key-b']);
      expect(set2.keys.map((k) => k.kid).sort()).toEqual(['key-a', 'key-b']);
      for (const s of [set0, set1, set2, set3])
        for (const k of s.keys) for (const m of PRIVATE_MEMBERS) expect(k).not.toHaveProperty(m);

      // Step 1 deployed while Zephr still holds the old set: tokens are still signed with key A.
      const zephrOld = await zephrWith(set0.file);
      await write({ ...step1, ZEPHR_URL: zephrOld }, 'rot-1');
      // Zephr has fetched the set with both keys: tokens of either step verify.
      const zephrBoth = await zephrWith(set1.file);
      await write({ ...step1, ZEPHR_URL: zephrBoth }, 'rot-2');
      await write({ ...step2, ZEPHR_URL: zephrBoth }, 'rot-3');
      // Old key retired: key B signs, and the set holds key B only.
      const zephrNew = await zephrWith(set3.file);
      await write({ ...step3, ZEPHR_URL: zephrNew }, 'rot-4');
      // The simulator really verifies: a token of the retired key A is refused now.
      await expect(write({ ...step0, ZEPHR_URL: zephrNew }, 'rot-5')).rejects.toThrow(/401/);
    },
    SLOW,
  );

  it(
    'HS256: no public key, a clear message and exit 1; no Zephr: exit 2 naming ZEPHR_URL',
    async () => {
      const hs = await runCli(['zephr', 'jwks'], {
        SOURCE_URL: 'http://127.0.0.1:9',
        ZEPHR_URL: 'http://127.0.0.1:9',
        ZEPHR_APP_ID: 'profile-sync',
        ZEPHR_JWT_SECRET: 'a-shared-secret-0123456789',
      });
      expect(hs.code).toBe(1);
      expect(hs.stdout).toBe('');
      expect(hs.stderr).toContain('shared HS256 secret');
      expect(hs.stderr).not.toContain('a-shared-secret-0123456789');
      const off = await runCli(['zephr', 'jwks'], { SOURCE_URL: 'http://127.0.0.1:9' });
      expect(off.code).toBe(2);
      expect(off.stderr).toContain('ZEPHR_URL');
      const bad = await runCli(['zephr', 'jwks'], {
        ...env({ current: KEY_A }),
        ZEPHR_JWT_NEXT_PRIVATE_KEY: 'not a pem',
      });
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain('ZEPHR_JWT_NEXT_PRIVATE_KEY');
      expect(bad.stderr).not.toContain('BEGIN');
    },
    SLOW,
  );
});
