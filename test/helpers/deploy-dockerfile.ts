import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isSecretEnv } from '../../src/config/config-file.js';
import { configSchema } from '../../src/config/schema.js';

/**
 * The Dockerfile rules that matter here (test/unit/deploy/dockerfile.test.ts), as a function returning
 * problems. No Dockerfile linter is usable offline and maintained: hadolint is not in Debian bookworm,
 * `dockerlinter` downloads ShellCheck from GitHub when installed, and `dockerfilelint` (2019 rules)
 * misreads `HEALTHCHECK --start-period` and `FROM ${ARG}`. So: a small parser and the rules below.
 */

export interface Instruction {
  cmd: string;
  args: string;
  line: number;
}

/** Instructions with `\` continuations joined; comments and parser directives skipped. */
export function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending: Instruction | undefined;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!pending && (line === '' || line.startsWith('#'))) return;
    if (pending && line.startsWith('#')) return; // a comment inside a continued instruction
    const body = line.endsWith('\\') ? line.slice(0, -1) : line;
    if (pending) pending.args += ` ${body.trim()}`;
    else {
      const m = /^(\S+)\s*(.*)$/.exec(body)!;
      pending = { cmd: m[1]!.toUpperCase(), args: m[2]!.trim(), line: i + 1 };
    }
    if (!line.endsWith('\\')) {
      out.push(pending);
      pending = undefined;
    }
  });
  if (pending) out.push(pending);
  return out;
}

/** The CLI's command names (`program.command('x')` in src/commands/). */
export function cliCommands(root: string): Set<string> {
  const names = new Set<string>();
  const dir = join(root, 'src', 'commands');
  for (const f of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
    for (const m of readFileSync(join(dir, f), 'utf8').matchAll(/\.command\('([\w-]+)/g)) names.add(m[1]!);
  }
  return names;
}

function execForm(args: string): string[] | undefined {
  try {
    const v = JSON.parse(args) as unknown;
    return Array.isArray(v) && v.every((x) => typeof x === 'string') ? v : undefined;
  } catch {
    return undefined;
  }
}

/** `K=V K2="V 2"` or the legacy `K V`. */
function keyValues(args: string): string[] {
  if (!/^[\w.-]+=/.test(args)) return [args.split(/\s+/)[0]!];
  return [...args.matchAll(/([\w.-]+)=("[^"]*"|\S*)/g)].map((m) => m[1]!);
}

export function dockerfileProblems(text: string, commands: Set<string>, dockerignore: string): string[] {
  const problems: string[] = [];
  const all = parseDockerfile(text);
  const args: Record<string, string> = {};
  const stages: { name?: string; base: string; body: Instruction[] }[] = [];
  for (const ins of all) {
    if (ins.cmd === 'FROM') {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      const base = (m?.[1] ?? ins.args).replace(/\$\{?(\w+)\}?/g, (_, n: string) => args[n] ?? `$${n}`);
      stages.push({ ...(m?.[2] ? { name: m[2] } : {}), base, body: [] });
    } else if (stages.length === 0) {
      if (ins.cmd === 'ARG') {
        const [k, v] = ins.args.split('=');
        if (k && v !== undefined) args[k] = v.replace(/^"|"$/g, '');
      }
    } else stages.at(-1)!.body.push(ins);
    if (ins.cmd === 'ENV' || ins.cmd === 'ARG') {
      for (const k of keyValues(ins.args)) {
        if (isSecretEnv(k)) problems.push(`line ${ins.line}: ${ins.cmd} ${k}: a secret baked into the image`);
      }
    }
  }
  if (stages.length === 0) return ['no FROM'];
  const stageNames = new Set(stages.map((s) => s.name));
  for (const s of stages) {
    if (stageNames.has(s.base)) continue;
    if (s.base.includes('$')) problems.push(`FROM ${s.base}: unresolved variable (give the ARG a default)`);
    const tag = /^(?:[^/]+\/)*[^/:@]+(?::([\w.-]+))?(@sha256:[a-f0-9]{64})?$/.exec(s.base);
    if (!tag?.[1] && !tag?.[2]) problems.push(`FROM ${s.base}: pin a tag or digest`);
    if (tag?.[1] === 'latest') problems.push(`FROM ${s.base}: 'latest' is not a pin`);
  }
  const final = stages.at(-1)!;
  if (!/^node:24([.-]|$)/.test(final.base))
    problems.push(`runtime FROM ${final.base}: not Node 24 LTS (node:24-*)`);
  const last = (cmd: string) => final.body.filter((i) => i.cmd === cmd).at(-1);

  const user = last('USER')?.args;
  if (!user) problems.push('runtime stage: no USER (runs as root)');
  else if (!/^\d+(:\d+)?$/.test(user))
    problems.push(`USER ${user}: use a numeric uid (Kubernetes runAsNonRoot checks it)`);
  else if (Number(user.split(':')[0]) === 0) problems.push('USER 0: root');

  const opsPort = configSchema.shape.ops.parse(undefined).port;
  const health = last('HEALTHCHECK')?.args ?? '';
  if (!health.includes('/healthz')) problems.push('runtime stage: HEALTHCHECK on /healthz missing');
  if (!final.body.some((i) => i.cmd === 'EXPOSE' && i.args.split(/\s+/).includes(String(opsPort)))) {
    problems.push(`runtime stage: EXPOSE ${opsPort} (OPS_PORT) missing`);
  }
  if (!final.body.some((i) => i.cmd === 'ENV' && /\bOPS_HOST=0\.0\.0\.0\b/.test(i.args))) {
    problems.push('runtime stage: ENV OPS_HOST=0.0.0.0 missing (probes reach the pod IP)');
  }

  const entrypoint = execForm(last('ENTRYPOINT')?.args ?? '');
  const cmd = execForm(last('CMD')?.args ?? '');
  if (!entrypoint) problems.push('ENTRYPOINT must be exec form (signals reach node)');
  else if (!entrypoint.some((a) => /(^|\/)dist\/cli\.js$/.test(a)))
    problems.push('ENTRYPOINT does not run dist/cli.js');
  if (!cmd) problems.push('CMD must be exec form');
  else if (!commands.has(cmd[0] ?? '')) problems.push(`CMD ${cmd[0]}: not a profile-sync command`);

  // The runtime copies what the CLI loads: the compiled code, production modules, package.json
  // (packageRoot()) and config/ (the default mapping).
  const copied = final.body.filter((i) => i.cmd === 'COPY').map((i) => i.args);
  for (const what of ['dist', 'node_modules', 'package.json', 'config']) {
    if (!copied.some((a) => new RegExp(`(^|\\s|/)${what.replace('.', '\\.')}\\b`).test(a))) {
      problems.push(`runtime stage: COPY of ${what} missing`);
    }
  }
  // `npm ci` runs the `prepare` build: without the sources copied first it fails, so such an install
  // needs --ignore-scripts (and a separate `npm run build` once the sources are there).
  for (const s of stages) {
    let sources = false;
    for (const i of s.body) {
      if (i.cmd === 'COPY' && /(^|\s)src\b/.test(i.args)) sources = true;
      if (
        i.cmd === 'RUN' &&
        /\bnpm (ci|install)\b/.test(i.args) &&
        !sources &&
        !/--ignore-scripts/.test(i.args)
      ) {
        problems.push(
          `line ${i.line}: npm ci before the sources are copied needs --ignore-scripts (prepare builds)`,
        );
      }
    }
  }
  if (!stages.some((s) => s.body.some((i) => i.cmd === 'RUN' && /npm run build/.test(i.args)))) {
    problems.push('no stage runs `npm run build`');
  }
  const ignored = dockerignore.split('\n').map((l) => l.trim());
  for (const p of ['.env', 'node_modules']) {
    if (!ignored.includes(p)) problems.push(`.dockerignore: ${p} missing (it would enter the build context)`);
  }
  return problems;
}
