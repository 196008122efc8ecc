import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { cliCommands, dockerfileProblems, parseDockerfile } from '../../helpers/deploy-dockerfile.js';

// The Dockerfile, against the rules that matter for this image (test/helpers/deploy-dockerfile.ts says
// why no linter package does it) and against the CLI and the Kubernetes manifests it must agree with.

const ROOT = join(import.meta.dirname, '..', '..', '..');
const DOCKERFILE = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
const DOCKERIGNORE = readFileSync(join(ROOT, '.dockerignore'), 'utf8');
const commands = cliCommands(ROOT);
const problems = (text: string, ignore = DOCKERIGNORE) => dockerfileProblems(text, commands, ignore);

describe('Dockerfile', () => {
  it('passes every rule', () => {
    expect(commands.has('daemon') && commands.has('sandbox')).toBe(true);
    expect(problems(DOCKERFILE)).toEqual([]);
  });

  it('runs as the uid the Deployment sets', () => {
    const user = parseDockerfile(DOCKERFILE)
      .filter((i) => i.cmd === 'USER')
      .at(-1)!.args;
    const deployment = parse(readFileSync(join(ROOT, 'deploy', 'deployment.yaml'), 'utf8'));
    expect(Number(user.split(':')[0])).toBe(deployment.spec.template.spec.securityContext.runAsUser);
  });

  it('joins continued lines and skips comments', () => {
    const ins = parseDockerfile('# c\nFROM a:1\nRUN one \\\n  # inside\n  two\nCMD ["x"]\n');
    expect(ins).toEqual([
      { cmd: 'FROM', args: 'a:1', line: 2 },
      { cmd: 'RUN', args: 'one two', line: 3 },
      { cmd: 'CMD', args: '["x"]', line: 6 },
    ]);
  });

  const cases: [string, (d: string) => string, RegExp][] = [
    [
      'an unpinned base',
      (d) => d.replace('ARG NODE_IMAGE=node:24-bookworm-slim', 'ARG NODE_IMAGE=node'),
      /pin a tag or digest/,
    ],
    ['a latest base', (d) => d.replace('node:24-bookworm-slim', 'node:latest'), /'latest' is not a pin/],
    ['an older Node', (d) => d.replace('node:24-bookworm-slim', 'node:20-bookworm-slim'), /not Node 24 LTS/],
    ['root', (d) => d.replace('USER 1000:1000', 'USER 0'), /USER 0: root/],
    ['a named user', (d) => d.replace('USER 1000:1000', 'USER node'), /numeric uid/],
    ['no USER', (d) => d.replace('USER 1000:1000', ''), /no USER/],
    [
      'no HEALTHCHECK',
      (d) => d.replace(/HEALTHCHECK[^\n]*\\\n[^\n]*\n/, ''),
      /HEALTHCHECK on \/healthz missing/,
    ],
    [
      'a secret in ENV',
      (d) => d.replace('NODE_ENV=production', 'NODE_ENV=production SUNSHINE_API_TOKEN=x'),
      /ENV SUNSHINE_API_TOKEN: a secret/,
    ],
    [
      'a secret ARG',
      (d) => d.replace('ARG NODE_IMAGE', 'ARG SOURCE_PASSWORD\nARG NODE_IMAGE'),
      /ARG SOURCE_PASSWORD: a secret/,
    ],
    [
      'npm ci running prepare without sources',
      (d) => d.replace('npm ci --no-audit --no-fund --ignore-scripts', 'npm ci --omit=dev'),
      /needs --ignore-scripts/,
    ],
    ['no build', (d) => d.replace('npm run build && ', ''), /npm run build/],
    [
      'a shell-form entrypoint',
      (d) => d.replace(/ENTRYPOINT .*/, 'ENTRYPOINT node /app/dist/cli.js'),
      /exec form/,
    ],
    [
      'an unknown command',
      (d) => d.replace('CMD ["daemon"]', 'CMD ["deamon"]'),
      /CMD deamon: not a profile-sync command/,
    ],
    [
      'config/ not copied',
      (d) => d.replace(/COPY --from=build --chown=node:node \/app\/config \.\/config\n/, ''),
      /COPY of config missing/,
    ],
    [
      'the ops server on loopback',
      (d) => d.replace('OPS_HOST=0.0.0.0', 'OPS_HOST=127.0.0.1'),
      /OPS_HOST=0.0.0.0 missing/,
    ],
  ];
  it.each(cases)('fails on %s', (_name, edit, problem) => {
    const text = edit(DOCKERFILE);
    expect(text).not.toBe(DOCKERFILE);
    expect(problems(text)).toContainEqual(expect.stringMatching(problem));
  });

  it('fails when .dockerignore lets .env into the build context', () => {
    expect(problems(DOCKERFILE, DOCKERIGNORE.replace(/^\.env$/m, ''))).toContainEqual(
      expect.stringMatching(/\.env missing/),
    );
  });
});
