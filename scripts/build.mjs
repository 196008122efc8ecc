#!/usr/bin/env node
// Compiles src/ and jobs/ into dist/, then writes dist/cli.js, the package bin.
// tsc keeps the source tree (dist/src, dist/jobs); the bin is a two-line shim so that
// `node dist/cli.js` works from the repository root as the README promises.
import { execFileSync } from 'node:child_process';
import { chmodSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
rmSync(join(root, 'dist'), { recursive: true, force: true });
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.json')], { stdio: 'inherit', cwd: root });
const bin = join(root, 'dist', 'cli.js');
writeFileSync(bin, "#!/usr/bin/env node\nimport './src/cli.js';\n");
chmodSync(bin, 0o755);
