import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { startSandbox } from '../../../src/sandbox/index.js';
import { composeProblems, schemaProblems } from '../../helpers/deploy-compose.js';
import type { Obj } from '../../helpers/deploy-kubernetes.js';

// docker-compose.yml and .env.example: the Compose spec's JSON schema, then what profile-sync needs
// (profiles, Redis persistence, the sandbox daemon on the simulators' credentials, valid configs).

const ROOT = join(import.meta.dirname, '..', '..', '..');
let sandboxEnv: Record<string, string> = {};
const temps: string[] = [];
beforeAll(async () => {
  const sandbox = await startSandbox({ port: 0, users: 1 });
  sandboxEnv = sandbox.env;
  await sandbox.close();
});
afterAll(() => {
  for (const t of temps) rmSync(t, { recursive: true, force: true });
});

/** A copy of docker-compose.yml and .env.example with the compose file changed by `edit`. */
function broken(edit: (compose: Obj) => void, envExample?: (text: string) => string): string {
  const dir = mkdtempSync(join(tmpdir(), 'compose-broken-'));
  temps.push(dir);
  cpSync(join(ROOT, '.env.example'), join(dir, '.env.example'));
  const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8')) as Obj;
  edit(compose);
  writeFileSync(join(dir, 'docker-compose.yml'), stringify(compose));
  if (envExample)
    writeFileSync(join(dir, '.env.example'), envExample(readFileSync(join(ROOT, '.env.example'), 'utf8')));
  return dir;
}

describe('docker-compose.yml', () => {
  it('is valid Compose and passes every check', () => {
    expect(composeProblems(ROOT, sandboxEnv)).toEqual([]);
  });

  it('the schema check catches an unknown key and a wrong type', () => {
    const problems = schemaProblems({
      services: {
        a: { image: 'x', restart_policy: 'always' },
        b: { image: 'y', healthcheck: { interval: 5 } },
      },
    });
    expect(problems).toContainEqual(
      expect.stringMatching(/\/services\/a: must NOT have additional properties/),
    );
    expect(problems).toContainEqual(
      expect.stringMatching(/\/services\/b\/healthcheck\/interval: must be string/),
    );
  });

  const cases: [string, (c: Obj) => void, RegExp][] = [
    [
      'a misspelt service key',
      (c) => {
        c.services.daemon.enviroment = {};
      },
      /must NOT have additional properties/,
    ],
    [
      'Redis without append-only',
      (c) => {
        c.services.redis.command = ['redis-server'];
      },
      /appendonly/,
    ],
    [
      'Redis without a named volume',
      (c) => {
        c.services.redis.volumes = ['./data:/data'];
      },
      /named volume/,
    ],
    [
      'a daemon without a profile',
      (c) => {
        delete c.services.daemon.profiles;
      },
      /without a profile/,
    ],
    [
      'no env file',
      (c) => {
        delete c.services.daemon.env_file;
      },
      /env_file .env/,
    ],
    [
      'an unknown variable',
      (c) => {
        c.services['sandbox-daemon'].environment.SYNC_CONCURENCY = '8';
      },
      /SYNC_CONCURENCY is not/,
    ],
    [
      'the sandbox on loopback',
      (c) => {
        c.services.sandbox.command = ['sandbox', '--port', '4100'];
      },
      /--host 0.0.0.0/,
    ],
    [
      'a sandbox daemon on its own network',
      (c) => {
        delete c.services['sandbox-daemon'].network_mode;
      },
      /network_mode/,
    ],
    [
      'a wrong sandbox credential',
      (c) => {
        c.services['sandbox-daemon'].environment.PRELUDE_API_KEY = 'x';
      },
      /PRELUDE_API_KEY is x/,
    ],
    [
      'a wrong sandbox port',
      (c) => {
        c.services.sandbox.command.splice(4, 1, '5100');
      },
      /SOURCE_URL is http:\/\/127.0.0.1:4100, the sandbox's is http:\/\/127.0.0.1:5100/,
    ],
    [
      'the live prefix in the sandbox',
      (c) => {
        delete c.services['sandbox-daemon'].environment.PROFILE_SYNC_PREFIX;
      },
      /PROFILE_SYNC_PREFIX/,
    ],
    [
      'an invalid sandbox config',
      (c) => {
        c.services['sandbox-daemon'].environment.SYNC_SCHEDULE = 'hourly';
      },
      /sandbox-daemon: not a valid configuration/,
    ],
    [
      'a liveness healthcheck',
      (c) => {
        c.services.daemon.healthcheck.test[3] = c.services.daemon.healthcheck.test[3].replace(
          '/readyz',
          '/healthz',
        );
      },
      /daemon: healthcheck must GET \/readyz/,
    ],
    [
      'a short grace period',
      (c) => {
        c.services.daemon.stop_grace_period = '10s';
      },
      /stop_grace_period/,
    ],
  ];
  it.each(cases)('fails on %s', (_name, edit, problem) => {
    expect(composeProblems(broken(edit), sandboxEnv)).toContainEqual(expect.stringMatching(problem));
  });

  it('fails on an unknown or real-looking variable in .env.example', () => {
    const dir = broken(
      () => undefined,
      (t) =>
        t.replace('SUNSHINE_API_TOKEN=CHANGE_ME', 'SUNSHINE_API_TOKEN=abc').replace('LOG_LEVEL', 'LOGLEVEL'),
    );
    const problems = composeProblems(dir, sandboxEnv);
    expect(problems).toContainEqual(
      expect.stringMatching(/SUNSHINE_API_TOKEN must be a CHANGE_ME placeholder/),
    );
    expect(problems).toContainEqual(expect.stringMatching(/\.env\.example: LOGLEVEL is not/));
  });
});
