// biome-ignore-all lint/suspicious/noTemplateCurlyInString: `${NAME}` is the config file syntax under test
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.js';
import { compileMappings } from '../../../src/config/mapping.js';
import { ConfigError } from '../../../src/core/config-error.js';
import { packageRoot } from '../../../src/paths.js';

const dir = mkdtempSync(join(tmpdir(), 'ps-config-'));
let n = 0;
function file(content: string, ext = '.yaml'): string {
  const f = join(dir, `config-${++n}${ext}`);
  writeFileSync(f, content);
  return f;
}

const base = { SOURCE_URL: 'http://127.0.0.1:4100', SOURCE_USERNAME: 'u', SOURCE_PASSWORD: 'p' };
const sunshineEnv = {
  SUNSHINE_URL: 'http://127.0.0.1:4101',
  SUNSHINE_EMAIL: 'a@b.c',
  SUNSHINE_API_TOKEN: 't',
};
const preludeEnv = { PRELUDE_URL: 'http://127.0.0.1:4103', PRELUDE_APP_ID: 'app', PRELUDE_API_KEY: 'k' };

function problems(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

describe('PROFILE_SYNC_CONFIG file', () => {
  it('YAML: config keys and mapping overrides reach the Config and the compiled mapping', () => {
    const f = file(`
targets:
  sunshine: { onDelete: delete, plan: professional }
sync:
  maxDeletes: 10
source:
  pageSize: 200
mapping:
  sunshine:
    attributes.last_name: null
    attributes.source_system: { const: idp }
  prelude:
    full_name: { template: "{firstName} {lastName}", transforms: [trim, omit-if-empty] }
`);
    const c = loadConfig({ ...base, ...sunshineEnv, ...preludeEnv, PROFILE_SYNC_CONFIG: f });
    expect(c.configFile).toBe(f);
    expect(c.targets.sunshine).toMatchObject({ onDelete: 'delete', plan: 'professional' });
    expect(c.sync.maxDeletes).toBe(10);
    expect(c.source.pageSize).toBe(200);
    const m = compileMappings(c);
    expect(m.sunshine.fields).not.toContain('attributes.last_name');
    expect(m.sunshine.map({ id: 'x', lastName: 'L' })).toEqual({
      name: 'L',
      'identifiers.external_id': 'x',
      'attributes.source_system': 'idp',
    });
    expect(m.prelude.map({ id: 'x', firstName: 'A', lastName: 'B' }).full_name).toBe('A B');
  });

  it('JSON works the same', () => {
    const f = file(
      JSON.stringify({ sync: { maxDeleteRate: 0.5 }, mapping: { zephr: { plan: { const: 'gold' } } } }),
      '.json',
    );
    const c = loadConfig({ ...base, PROFILE_SYNC_CONFIG: f });
    expect(c.sync.maxDeleteRate).toBe(0.5);
    expect(compileMappings(c).zephr.map({ id: 'x' })).toEqual({ plan: 'gold' });
  });

  it('an empty file is fine', () => {
    expect(loadConfig({ ...base, PROFILE_SYNC_CONFIG: file('') }).mapping).toEqual({});
  });

  it('the environment wins over the file', () => {
    const f = file('targets:\n  sunshine: { plan: enterprise }\nsource:\n  pageSize: 200\n');
    const c = loadConfig({
      ...base,
      ...sunshineEnv,
      SUNSHINE_PLAN: 'growth',
      SOURCE_PAGE_SIZE: '50',
      PROFILE_SYNC_CONFIG: f,
    });
    expect(c.targets.sunshine?.plan).toBe('growth');
    expect(c.source.pageSize).toBe(50);
  });

  it('the settings of a disabled target are ignored, as for env variables', () => {
    const f = file('targets:\n  zephr: { onDelete: clear }\n');
    expect(loadConfig({ ...base, PROFILE_SYNC_CONFIG: f }).targets.zephr).toBeUndefined();
  });

  it('a target URL in the file is refused: a target is enabled exactly when its *_URL is set', () => {
    const f = file('targets:\n  prelude: { url: "https://api.prelude.dev" }\n');
    expect(problems({ ...base, PROFILE_SYNC_CONFIG: f })).toEqual([
      `${f}: targets.prelude.url: a target is enabled exactly when PRELUDE_URL is set; set PRELUDE_URL in the environment instead`,
    ]);
  });

  it('${NAME} references are substituted from the environment; $${ is a literal', () => {
    const f = file(
      'mapping:\n  zephr:\n    tenant: { const: "${TENANT}-x" }\n    lit: { const: "$${NOT_A_VAR}" }\n',
    );
    const c = loadConfig({ ...base, TENANT: 'acme', PROFILE_SYNC_CONFIG: f });
    expect(compileMappings(c).zephr.map({ id: 'x' })).toEqual({ tenant: 'acme-x', lit: '${NOT_A_VAR}' });
  });

  it('a secret may come from the file through an env reference', () => {
    const f = file('source:\n  password: "${IDP_PASSWORD}"\n');
    const c = loadConfig({
      SOURCE_URL: 'http://127.0.0.1:1',
      SOURCE_USERNAME: 'u',
      IDP_PASSWORD: 's3cr3t',
      PROFILE_SYNC_CONFIG: f,
    });
    expect(c.source.password).toBe('s3cr3t');
  });

  it('a missing variable is a ConfigError naming the file, the path and the variable', () => {
    const f = file('targets:\n  sunshine:\n    plan: "${PLAN_NAME}"\n');
    expect(problems({ ...base, ...sunshineEnv, PROFILE_SYNC_CONFIG: f })).toEqual([
      `${f}: targets.sunshine.plan: environment variable PLAN_NAME is not set; export it or remove the reference`,
    ]);
  });

  it('a syntax error names the file and the line, never the content', () => {
    const f = file('mapping:\n  zephr:\n    a: { const: "top-secret-value"\n  b: [\n');
    const p = problems({ ...base, PROFILE_SYNC_CONFIG: f });
    expect(p[0]).toMatch(
      new RegExp(
        `^${f.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: YAML syntax error at line \\d+, column \\d+ \\(\\w+\\); fix the file$`,
      ),
    );
    expect(p.join('\n')).not.toContain('top-secret-value');
    const j = file('{"sync": {"maxDeletes": 1,}}x', '.json');
    expect(problems({ ...base, PROFILE_SYNC_CONFIG: j })[0]).toMatch(/JSON syntax error at line 1/);
  });

  it('a missing file names the path and the fix', () => {
    expect(problems({ ...base, PROFILE_SYNC_CONFIG: join(dir, 'nope.yaml') })[0]).toMatch(
      /^PROFILE_SYNC_CONFIG: cannot read .*nope\.yaml \(ENOENT\); fix the path or unset PROFILE_SYNC_CONFIG$/,
    );
  });

  it('a top level that is not a mapping is refused', () => {
    expect(problems({ ...base, PROFILE_SYNC_CONFIG: file('- a\n- b\n') })[0]).toMatch(
      /top level must be a mapping/,
    );
  });

  it('unknown keys are refused (a typo is not silently ignored)', () => {
    const f = file('targets:\n  sunshine: { ondelete: delete }\nsyncc: {}\n');
    expect(problems({ ...base, ...sunshineEnv, PROFILE_SYNC_CONFIG: f })).toEqual([
      `${f}: targets.sunshine.ondelete: unknown key; remove it or fix its spelling (docs/connectors-core.md lists the keys)`,
      `${f}: syncc: unknown key; remove it or fix its spelling (docs/connectors-core.md lists the keys)`,
    ]);
  });

  it('a bad value in the file is named by file and path; one from env by the variable', () => {
    const f = file('sync:\n  maxDeleteRate: 2\n');
    expect(problems({ ...base, PROFILE_SYNC_CONFIG: f })).toEqual([
      expect.stringMatching(new RegExp(`^${f.replace(/[.\\/]/g, '\\$&')}: sync\\.maxDeleteRate: `)),
    ]);
    expect(problems({ ...base, MAX_DELETE_RATE: '3', PROFILE_SYNC_CONFIG: f })).toEqual([
      expect.stringMatching(/^MAX_DELETE_RATE: /),
    ]);
  });

  it('a bad mapping rule in the file names the file, the dotted path and the fix', () => {
    const f = file(
      'mapping:\n  sunshine:\n    attributes.nick: { from: nickname, transforms: [titlecase] }\n',
    );
    expect(problems({ ...base, PROFILE_SYNC_CONFIG: f })).toEqual([
      expect.stringContaining(
        `${f}: mapping.sunshine["attributes.nick"].from: unknown source path "nickname"; use one of: id, firstName, lastName, email`,
      ),
      expect.stringContaining(
        `${f}: mapping.sunshine["attributes.nick"].transforms[0]: unknown transform "titlecase"; use one of: trim, lowercase, uppercase, omit-if-empty`,
      ),
    ]);
  });

  it('a semantic mapping problem (Prelude reserved key, non-string) fails at load', () => {
    const f = file('mapping:\n  prelude:\n    sub: { from: id }\n    tier: { const: 3 }\n');
    const p = problems({ ...base, PROFILE_SYNC_CONFIG: f });
    expect(p).toEqual([
      expect.stringMatching(/mapping\.prelude\.sub: 'sub' is a reserved Prelude profile key .*; rename it$/),
      expect.stringMatching(
        /mapping\.prelude\.tier: Prelude profile values are strings only .*; quote the constant$/,
      ),
    ]);
    expect(p.every((x) => x.startsWith(f))).toBe(true);
  });
});

const cli = join(packageRoot(), 'dist', 'cli.js');
const run = promisify(execFile);

// dist/ is written by `npm test`'s pretest (npm run build); run `npm run build` first when calling vitest directly.
describe.skipIf(!existsSync(cli))('CLI with a bad config file', () => {
  it('`config check` exits 2 and names the file and the path', async () => {
    const f = file('mapping:\n  prelude:\n    iat: { from: id }\n');
    const err = (await run(process.execPath, [cli, 'config', 'check'], {
      env: { PATH: process.env.PATH ?? '', ...base, PROFILE_SYNC_CONFIG: f },
    }).catch((e) => e)) as { code: number; stderr: string };
    expect(err.code).toBe(2);
    expect(err.stderr).toContain(`${f}: mapping.prelude.iat: 'iat' is a reserved Prelude profile key`);
  });

  it('`config check` with a good file exits 0 and shows the override in the payload', async () => {
    const f = file('mapping:\n  prelude:\n    plan: { const: gold }\n');
    const out = await run(process.execPath, [cli, 'config', 'check', '--json'], {
      env: { PATH: process.env.PATH ?? '', ...base, ...preludeEnv, PROFILE_SYNC_CONFIG: f },
    });
    const report = JSON.parse(out.stdout) as {
      targets: { target: string; fields?: Record<string, string> }[];
    };
    expect(report.targets.find((t) => t.target === 'prelude')?.fields).toMatchObject({ plan: 'gold' });
  });
});
