import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { specifiers, tsFiles } from '../helpers/imports.js';

// CONTRACT (issue 9, docs/architecture.md): the folders are layers. A file imports only its own layer
// or lower ones: cli/commands -> daemon/http -> jobs -> engine/pipeline -> connectors -> store/config -> core.
// No exception list: a new import against the order means the code is in the wrong room.
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Path prefix -> layer rank (higher imports lower). The longest matching prefix wins. */
const LAYERS: Record<string, number> = {
  'src/cli.ts': 7,
  'src/commands/': 7, // thin commands and their printing (print/)
  'src/daemon/': 6,
  'src/http/': 6, // health, metrics, dashboard, runs API
  'jobs/': 5, // one job per file, jobs/index.ts lists them, run actions, shared per-user steps
  'src/queue/': 4, // the engine: queues, workers, throttles; handed its jobs
  'src/pipeline/': 4, // deletions policy, erasure
  'src/connectors/': 3, // source and targets
  'src/store/': 2, // every Redis key, the connection, state, runs, links, deletion sets
  'src/config/': 2, // schema, load (the only reader of process.env), mapping
  'src/core/': 1, // target ids, shared types, diff, hashing, masking, errors: imports nothing else
  'src/log.ts': 1, // leaf modules beside core: import nothing of the project
  'src/paths.ts': 1,
};
const LEAVES = ['src/core/', 'src/log.ts', 'src/paths.ts'];
const SANDBOX = 'src/sandbox/';
/** The simulators are a separate program: only the commands that start them (demo, sandbox) import them. */
const SANDBOX_USERS = ['src/commands/'];

function layerOf(path: string): number | undefined {
  let best: string | undefined;
  for (const prefix of Object.keys(LAYERS))
    if ((path === prefix || path.startsWith(prefix)) && (!best || prefix.length > best.length)) best = prefix;
  return best === undefined ? undefined : LAYERS[best];
}

/** Imports of `file` (repo-relative) that run against the layers, as `file -> target (why)`. */
function violations(file: string, source: string): string[] {
  const from = layerOf(file);
  if (from === undefined) return [`${file}: in no layer; add its folder to LAYERS`];
  const out: string[] = [];
  for (const spec of specifiers(source)) {
    if (!spec.startsWith('.')) continue;
    const target = relative(root, resolve(root, dirname(file), spec))
      .split('\\')
      .join('/')
      .replace(/\.js$/, '.ts');
    if (target.startsWith(SANDBOX)) {
      if (!SANDBOX_USERS.some((p) => file.startsWith(p)))
        out.push(`${file} -> ${target} (only commands start the sandbox)`);
      continue;
    }
    const to = layerOf(target);
    if (to === undefined) out.push(`${file} -> ${target} (outside the layers)`);
    else if (
      LEAVES.some((p) => file.startsWith(p)) &&
      !(file.startsWith('src/core/') && target.startsWith('src/core/'))
    )
      out.push(`${file} -> ${target} (core and leaf modules import nothing of the project)`);
    else if (to > from) out.push(`${file} -> ${target} (layer ${from} imports layer ${to})`);
  }
  return out;
}

const projectFiles = () =>
  [...tsFiles(join(root, 'src')), ...tsFiles(join(root, 'jobs'))]
    .map((f) => relative(root, f).split('\\').join('/'))
    .filter((f) => !f.startsWith(SANDBOX));

describe('architecture: layers', () => {
  it('classifies imports against the order', () => {
    expect(
      violations('src/connectors/zephr/target.ts', "import { diffFields } from '../../core/diff.js';"),
    ).toEqual([]);
    expect(violations('src/queue/engine.ts', "import * as sync from '../../jobs/sync.js';")).toEqual([
      'src/queue/engine.ts -> jobs/sync.ts (layer 4 imports layer 5)',
    ]);
    expect(
      violations('src/config/load.ts', "import { compileMappings } from '../pipeline/mapping.js';"),
    ).toEqual(['src/config/load.ts -> src/pipeline/mapping.ts (layer 2 imports layer 4)']);
    expect(violations('src/core/diff.ts', "import type { X } from '../connectors/types.js';")).toHaveLength(
      1,
    );
    expect(violations('src/core/diff.ts', "import type { FieldMap } from './types.js';")).toEqual([]);
    expect(violations('src/store/links.ts', "export { a } from '../pipeline/x.js';")).toHaveLength(1);
    expect(violations('jobs/sync.ts', "const m = await import('../src/http/server.js');")).toHaveLength(1);
    expect(violations('src/http/x.ts', "import { s } from '../sandbox/index.js';")).toHaveLength(1);
    expect(violations('src/commands/demo.ts', "import { s } from '../sandbox/index.js';")).toEqual([]);
    expect(violations('src/newdir/x.ts', '')).toHaveLength(1);
  });

  it('every file of src/ and jobs/ sits in a layer and imports only its own or lower ones', () => {
    const files = projectFiles();
    expect(files.length).toBeGreaterThan(50);
    const bad = files.flatMap((f) => violations(f, readFileSync(join(root, f), 'utf8')));
    expect(bad).toEqual([]);
  });

  it('no file outside the sandbox is over 450 lines', () => {
    const long = projectFiles()
      .map((f) => [f, readFileSync(join(root, f), 'utf8').split('\n').length] as const)
      .filter(([, n]) => n > 450)
      .map(([f, n]) => `${f}: ${n} lines`);
    expect(long).toEqual([]);
  });

  it('no async_hooks in the engine: the request scope is handed down, never in an AsyncLocalStorage', () => {
    // Issue 11: one AsyncLocalStorage switched Node 20's promise hooks on for every promise of the
    // worker (ioredis, undici, BullMQ): ~3% of its CPU. The scope goes with each call (RequestScope).
    const bad = projectFiles().filter((f) =>
      /['"](node:)?async_hooks['"]/.test(readFileSync(join(root, f), 'utf8')),
    );
    expect(bad).toEqual([]);
  });

  it('no Redis key string is built outside src/store/', () => {
    // RedisLayout.key(...), `${...bullPrefix}:...`, and hand-written hash tags `{${prefix}}`.
    const KEY_BUILDING = /\.key\(\s*['"`]|\$\{[\w.]*bullPrefix\}|\{\$\{[\w.]*[pP]refix\}\}/;
    const bad = projectFiles()
      .filter((f) => !f.startsWith('src/store/'))
      .flatMap((f) =>
        readFileSync(join(root, f), 'utf8')
          .split('\n')
          .map((line, i) => [line, i + 1] as const)
          .filter(([line]) => !/^\s*(\*|\/\/)/.test(line) && KEY_BUILDING.test(line))
          .map(([line, n]) => `${f}:${n}: ${line.trim()}`),
      );
    expect(bad).toEqual([]);
  });
});
